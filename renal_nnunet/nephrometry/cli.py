"""``renal-nnunet nephrometry``: R.E.N.A.L., PADUA and C-index of the masses of label maps (see renal_nnunet.cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

from renal_nnunet.anatomy.labels import LABEL_MAP_FORMATS
from renal_nnunet.cli_options import add_input, add_output


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
    parser = subparsers.add_parser(
        "nephrometry",
        help="R.E.N.A.L., PADUA and C-index of every renal mass of a reference or predicted label map",
        description="Score every renal mass (a connected component of tumour or cyst in KiTS labels, of labels 3-6 in "
        "pipeline labels) of each label map on its CT and write OUT/nephrometry.csv and .json (one row per mass) and "
        "OUT/<case>_nephrometry.png (the planes each score was read from). Definitions: README, section Nephrometry.",
    )
    add_input(parser, "a CT file (with -s), a KiTS dataset/ folder of case folders (imaging.nii.gz + "
              "segmentation.nii.gz), or a folder of CT files", type=Path)
    parser.add_argument("-s", "--seg", type=Path, default=None,
                        help="the label-map file, or a folder of them (<case>.nii.gz, <case>_seg.nii.gz or case "
                        "folders); default for KiTS case folders: their segmentation.nii.gz")
    parser.add_argument("--seg-format", choices=LABEL_MAP_FORMATS, default="kits",
                        help="labels of the label maps: kits (1 kidney, 2 tumour, 3 cyst; default) or pipeline "
                        "(predict's <case>_seg.nii.gz: 1 right, 2 left kidney, 3-6 masses)")
    add_output(parser, "output folder", type=Path)
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG pictures")
    parser.set_defaults(func=_nephrometry)


def _nephrometry(args: argparse.Namespace) -> int:
    from renal_nnunet.nephrometry.cases import score_label_maps

    table, failures, cases = score_label_maps(args.input, args.seg, args.output, args.seg_format, not args.no_figures)
    print(f"{len(table)} mass(es) of {cases - len(failures)} case(s) scored: {args.output / 'nephrometry.csv'}")
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures else 0
