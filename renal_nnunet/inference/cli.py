"""``renal-nnunet predict-stage|map-back``: one stage's predictions in each CT's geometry."""

from __future__ import annotations

import argparse

from renal_nnunet.nnunet.cli import _folds, _report


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the one-stage inference subcommands."""
    stage = subparsers.add_parser("predict-stage", help="one model on CTs, labels written in each CT's geometry")
    stage.add_argument("-i", "--input", nargs="+", required=True, help="CT files (NIfTI, ...) or DICOM series folders")
    stage.add_argument("-o", "--output", required=True, help="output folder (CASE.nii.gz per input)")
    stage.add_argument("-m", "--model", required=True,
                       help="trained-model folder, e.g. $nnUNet_results/Dataset501_RenalKidney128/"
                            "nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres")
    stage.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"])
    stage.add_argument("--crop-from", nargs="+", default=None, metavar="LABELS",
                       help="one label map per input (e.g. kidney predictions): predict in each label's box")
    stage.add_argument("--margin-mm", type=float, default=10.0, help="crop margin around each box, mm (default 10)")
    stage.add_argument("-device", "--device", default="cpu", choices=("cuda", "cpu", "mps"))
    stage.set_defaults(func=_run_predict_stage)

    back = subparsers.add_parser("map-back", help="map grid predictions (e.g. from nnUNetv2_predict) onto the source CTs")
    back.add_argument("-i", "--input", required=True, help="folder of CASE.nii.gz grid predictions")
    back.add_argument("-s", "--sidecars", required=True, help="folder of CASE.json grid sidecars (<dataset>/sidecars)")
    back.add_argument("-o", "--output", required=True, help="output folder")
    back.set_defaults(func=_run_map_back)


def _run_predict_stage(args) -> int:
    from renal_nnunet.inference.map_back import predict_stage_files

    written, failures = predict_stage_files(args.input, args.output, args.model, _folds(args.folds), args.crop_from,
                                            args.margin_mm, args.device)
    return _report(written, failures)


def _run_map_back(args) -> int:
    from renal_nnunet.inference.map_back import map_predictions_to_source

    return _report(*map_predictions_to_source(args.input, args.sidecars, args.output))
