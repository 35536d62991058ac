"""``renal-nnunet predict-stage|map-back``: one stage's predictions in each CT's geometry."""

from __future__ import annotations

import argparse

from renal_nnunet.cli_options import (
    add_backend,
    add_precision,
    add_device,
    add_folds,
    add_input,
    add_models,
    add_output,
    nnunet_folds,
    non_negative_mm,
    print_batch_report,
    runtime_of,
)
from renal_nnunet.settings import PAPER


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the one-stage inference subcommands."""
    stage = subparsers.add_parser("predict-stage", help="one model on CTs, labels written in each CT's geometry")
    add_input(stage, "CT files (NIfTI, ...) or DICOM series folders", nargs="+")
    add_output(stage, "output folder (CASE.nii.gz per input; CASE_0000.nii.gz is case CASE)")
    add_models(stage, "trained-model folder, e.g. $nnUNet_results/Dataset501_RenalKidney128/"
                      "nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres")
    add_folds(stage)
    stage.add_argument("--crop-from", nargs="+", default=None, metavar="LABELS",
                       help="one label map per input (e.g. kidney predictions): predict in each label's box")
    stage.add_argument("--margin-mm", type=non_negative_mm, default=PAPER.kidney_margin_mm,
                       help=f"crop margin around each box, mm (default {PAPER.kidney_margin_mm:g}, the paper's)")
    add_device(stage)
    add_backend(stage)
    add_precision(stage)
    stage.set_defaults(func=_run_predict_stage)

    back = subparsers.add_parser("map-back", help="map grid predictions (e.g. from nnUNetv2_predict) onto the source CTs")
    add_input(back, "folder of CASE.nii.gz grid predictions")
    back.add_argument("-s", "--sidecars", required=True, help="folder of CASE.json grid sidecars (<dataset>/sidecars)")
    add_output(back, "output folder")
    back.set_defaults(func=_run_map_back)


def _run_predict_stage(args) -> int:
    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.inference.map_back import predict_stage_files

    ensemble = FoldEnsemble(args.models, nnunet_folds(args.folds), runtime_of(args))
    written, failures = predict_stage_files(args.input, args.output, ensemble, crop_from=args.crop_from,
                                            margin_mm=args.margin_mm)
    return print_batch_report(written, failures)


def _run_map_back(args) -> int:
    from renal_nnunet.inference.map_back import map_predictions_to_source

    return print_batch_report(*map_predictions_to_source(args.input, args.sidecars, args.output))
