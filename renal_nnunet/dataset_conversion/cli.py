"""``renal-nnunet convert kits|manifest``: build the paper's nnU-Net raw datasets (see renal_nnunet.cli)."""

from __future__ import annotations

import argparse
import sys

from renal_nnunet.cli_options import add_output, non_negative_mm, positive_int
from renal_nnunet.settings import PAPER


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert kits`` and ``convert manifest``."""
    convert = subparsers.add_parser("convert", help="convert KiTS21/KiTS23 or a CSV manifest into nnU-Net raw datasets")
    kinds = convert.add_subparsers(dest="convert_source", metavar="SOURCE", required=True)
    kits = kinds.add_parser("kits", help="a KiTS21 data/ or KiTS23 dataset/ folder")
    kits.add_argument("src", help="folder with case_XXXXX/ folders and kits.json (KiTS21) or kits23.json (KiTS23)")
    _add_common(kits)
    kits.set_defaults(func=_run_kits)
    manifest = kinds.add_parser("manifest", help="an institution's CSV manifest (see renal_nnunet.dataset_conversion.manifest)")
    manifest.add_argument("csv", help="CSV with columns patient_id, series_id, image, label [, label_values, subtype]")
    _add_common(manifest)
    manifest.set_defaults(func=_run_manifest)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_output(parser, "nnU-Net raw folder to write the datasets into")
    parser.add_argument("--first-id", type=int, default=501, help="dataset id of the kidney dataset (default 501)")
    parser.add_argument("--grid", type=int, default=PAPER.grid,
                        help=f"grid edge in voxels (default {PAPER.grid}, the paper's)")
    parser.add_argument("--margin-mm", type=non_negative_mm, default=PAPER.kidney_margin_mm,
                        help=f"margin around each kidney crop, mm (default {PAPER.kidney_margin_mm:g}, the paper's)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--num-parts", type=positive_int, default=1,
                        help="split the cases into this many parts, e.g. one per array job (as nnUNetv2_predict)")
    parser.add_argument("--part-id", type=int, default=0,
                        help="which part this run converts (0-based); the splits, dataset.json and lesion table "
                             "wait for --finalize")
    parser.add_argument("--finalize", action="store_true",
                        help="after every part: write the splits, dataset.json files and lesion table (fails "
                             "while a part is missing)")


def _config(args):
    from renal_nnunet.dataset_conversion.convert import ConversionConfig

    return ConversionConfig(first_id=args.first_id, grid=args.grid, margin_mm=args.margin_mm, workers=args.workers)


def _run_kits(args) -> int:
    from renal_nnunet.dataset_conversion.kits import find_kits_cases

    return _finish(_convert(find_kits_cases(args.src), args))


def _run_manifest(args) -> int:
    from renal_nnunet.dataset_conversion.manifest import read_manifest

    return _finish(_convert(read_manifest(args.csv), args))


def _convert(cases, args):
    """The whole cohort at once, one part of it, or the finishing step after the parts."""
    from renal_nnunet.dataset_conversion.convert import convert_cases
    from renal_nnunet.dataset_conversion.parts import convert_part, finalize_parts

    if args.finalize:
        if args.num_parts != 1 or args.part_id != 0:
            raise ValueError("--finalize takes the same options as the parts, without --num-parts/--part-id")
        return finalize_parts(cases, args.output, _config(args))
    if args.num_parts > 1:
        return convert_part(cases, args.output, _config(args), args.num_parts, args.part_id)
    return convert_cases(cases, args.output, _config(args))


def _finish(report) -> int:
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 0 if report.ok else 1
