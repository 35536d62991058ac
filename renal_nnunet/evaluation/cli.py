"""``renal-nnunet evaluate``: compare predicted label maps with references (see renal_nnunet.cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

from renal_nnunet.cli_options import add_output, non_negative_mm
from renal_nnunet.settings import PAPER


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
    parser = subparsers.add_parser(
        "evaluate",
        help="segmentation, detection, classification and KiTS metrics of predictions against references",
        description="Match predictions (pipeline labels 0-6) to references by case id and write per_case.csv, "
        "per_lesion.csv, kits.csv, errors.csv, summary.csv, summary.md and PNG figures.",
    )
    parser.add_argument("--pred", required=True, type=Path, help="folder of predicted label maps (<case>_seg.nii.gz), or one file")
    parser.add_argument("--ref", required=True, type=Path, help="folder of reference label maps or KiTS case folders, or one file")
    parser.add_argument("--ref-format", choices=("pipeline", "kits"), default="pipeline",
                        help="labels of the references: pipeline (0-6) or kits (1 kidney, 2 tumour, 3 cyst)")
    parser.add_argument("--ref-kidney", choices=("paper", "kits"), default="paper",
                        help="kidney of KiTS references: paper (default; sinus filled and masses included, as convert "
                             "makes the training labels) or kits (KiTS's own, sinus fat excluded); the KiTS HEC "
                             "metrics always use the raw KiTS labels")
    parser.add_argument("--lesions-pred", type=Path, default=None,
                        help="predicted lesion table (CSV with case_id) or folder of <case>_lesions.csv "
                        "(default: the --pred folder)")
    parser.add_argument("--lesions-ref", type=Path, default=None,
                        help="reference lesion table, e.g. RenalLesions/lesions.csv from convert")
    parser.add_argument("--nephrometry-ref", type=Path, default=None,
                        help="the references' nephrometry (OUT/nephrometry.csv of renal-nnunet nephrometry on them, "
                        "or that folder): adds predicted vs reference scores per TP mass and their agreement")
    add_output(parser, "output folder", type=Path)
    parser.add_argument("--workers", type=int, default=1, help="cases evaluated in parallel")
    parser.add_argument("--size-threshold-mm", type=non_negative_mm, default=PAPER.size_threshold_mm,
                        help="average-diameter threshold of the classification strata, mm "
                             f"(default {PAPER.size_threshold_mm:g}, the paper's)")
    parser.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26, help="lesion connectivity")
    parser.add_argument("--min-lesion-voxels", type=int, default=0, help="ignore smaller lesion components")
    parser.add_argument("--min-lesion-mm3", type=float, default=0.0, help="ignore lesion components below this volume")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from renal_nnunet.evaluation.detection import DetectionConfig
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders

    config = EvaluationConfig(
        ref_format=args.ref_format, ref_kidney=args.ref_kidney, size_threshold_mm=args.size_threshold_mm,
        detection=DetectionConfig(connectivity=args.connectivity, min_size_voxels=args.min_lesion_voxels,
                                  min_volume_mm3=args.min_lesion_mm3),
        lesions_pred=args.lesions_pred, lesions_ref=args.lesions_ref, nephrometry_ref=args.nephrometry_ref,
        workers=args.workers, figures=not args.no_figures,
    )
    result = evaluate_folders(args.pred, args.ref, args.output, config)
    evaluated = result.per_case["case_id"].nunique() if len(result.per_case) else 0
    print(f"evaluated {evaluated} case(s), {len(result.errors)} error(s); report in {args.output}")
    for row in result.errors.itertuples():
        print(f"  error {row.case_id}: {row.problem}")
    print((args.output / "summary.md").read_text(encoding="utf-8"))
    return 0 if evaluated else 1
