"""``renal-nnunet env|plan|train|predict-dataset``: nnU-Net's stock commands (see renal_nnunet.cli).

The nnU-Net wrappers need no ``nnUNet_extTrainer``: they register this package's trainers
in-process. ``env`` prints the line that makes the stock ``nnUNetv2_*`` commands find them too.
"""

from __future__ import annotations

import argparse
import os

from renal_nnunet.cli_options import (
    add_dataset,
    add_device,
    add_folds,
    add_input,
    add_output,
    nnunet_folds,
    resolve_device,
)
from renal_nnunet.nnunet.layout import CHECKPOINT_NAME

_TRAINER_HELP = "trainer class (default nnUNetTrainerRenalPaper; stock ones such as nnUNetTrainer work too)"


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """nnU-Net's flags that name a trained model and the device, spelled as its own commands spell them."""
    parser.add_argument("-c", "--configuration", default="3d_fullres")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainerRenalPaper", help=_TRAINER_HELP)
    parser.add_argument("-p", "--plans", default="nnUNetPlans")
    add_device(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the nnU-Net subcommands."""
    env = subparsers.add_parser("env", help="print the export line that lets stock nnUNetv2_* commands find the trainers")
    env.set_defaults(func=_run_env)

    plan = subparsers.add_parser("plan", help="nnUNetv2_plan_and_preprocess (+ install the converter's patient-grouped splits)")
    add_dataset(plan)
    plan.add_argument("-c", "--configurations", nargs="+", default=["3d_fullres"], help="default 3d_fullres")
    plan.add_argument("-pl", "--planner", default="ExperimentPlanner",
                      help="nnU-Net experiment planner (default ExperimentPlanner, plans nnUNetPlans; "
                           "nnUNetPlannerResEncM/L/XL write nnUNetResEncUNetM/L/XLPlans, then train with -p)")
    plan.add_argument("-np", "--num-processes", type=int, default=1, help="worker processes (default 1)")
    plan.add_argument("--no-verify", action="store_true", help="skip nnU-Net's dataset integrity check")
    plan.set_defaults(func=_run_plan)

    train = subparsers.add_parser("train", help="nnUNetv2_train with this package's trainers registered")
    train.add_argument("dataset", help="dataset id or name")
    train.add_argument("fold", help="fold 0-4 or 'all'")
    _add_model_arguments(train)
    train.add_argument("--c", dest="continue_training", action="store_true", help="continue from the latest checkpoint")
    train.add_argument("--npz", action="store_true", help="also save validation probabilities")
    train.set_defaults(func=_run_train)

    predict = subparsers.add_parser("predict-dataset", help="nnUNetv2_predict on a folder of grid images (CASE_0000.nii.gz)")
    add_input(predict, "folder of nnU-Net-format images")
    add_output(predict, "output folder")
    add_dataset(predict, "dataset id or name of the trained model")
    add_folds(predict)
    _add_model_arguments(predict)
    predict.add_argument("-chk", "--checkpoint", default=CHECKPOINT_NAME)
    predict.add_argument("-np", "--num-processes", type=int, default=1, help="worker processes (1: no pools)")
    predict.add_argument("--save-probabilities", action="store_true")
    predict.set_defaults(func=_run_predict_dataset)


def _run_env(args) -> int:
    from renal_nnunet.trainers.registration import ext_trainer_export_line

    print(ext_trainer_export_line(os.environ.get("nnUNet_extTrainer")))
    return 0


def _run_plan(args) -> int:
    from renal_nnunet.nnunet.commands import plan

    print(plan(args.dataset, args.configurations, verify=not args.no_verify, num_processes=args.num_processes,
               planner=args.planner))
    return 0


def _run_train(args) -> int:
    from renal_nnunet.nnunet.commands import train

    print(train(args.dataset, args.fold, trainer=args.trainer, configuration=args.configuration, plans=args.plans,
                continue_training=args.continue_training, device=resolve_device(args.device),
                export_validation_probabilities=args.npz))
    return 0


def _run_predict_dataset(args) -> int:
    from renal_nnunet.nnunet.commands import predict_dataset

    print(predict_dataset(args.input, args.output, args.dataset, folds=nnunet_folds(args.folds), trainer=args.trainer,
                          configuration=args.configuration, plans=args.plans, device=resolve_device(args.device),
                          save_probabilities=args.save_probabilities, num_processes=args.num_processes,
                          checkpoint=args.checkpoint))
    return 0
