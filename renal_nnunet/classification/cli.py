"""``renal-nnunet classifier train|calibrate|predict``: the lesion classifier (see renal_nnunet.cli)."""

from __future__ import annotations

import argparse

from renal_nnunet.cli_options import add_backend, add_device, add_input, add_output, resolve_device, runtime_of
from renal_nnunet.settings import PAPER


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``classifier train``, ``classifier calibrate`` and ``classifier predict``."""
    classifier = subparsers.add_parser("classifier", help="3D ResNet-10 lesion classifier (AML / cystic / solid)")
    actions = classifier.add_subparsers(dest="classifier_action", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train", help="train one fold on the converter's lesion crops",
        description=f"Train the lesion classifier (paper: Adam lr {PAPER.learning_rate:g}, batch {PAPER.batch_size}, "
                    f"{PAPER.epochs} epochs, MedicalNet "
                    "ResNet-10 backbone). Writes DIR/fold_<k>/checkpoint_best.pth (best validation balanced "
                    "accuracy), checkpoint_latest.pth (resumed automatically), log.csv and progress.png.",
    )
    train.add_argument("lesions_dir", metavar="LESIONS_DIR",
                       help="the converter's RenalLesions folder (lesions.csv + crops/)")
    add_output(train, "output folder (fold_<k>/ is created inside)", metavar="DIR")
    train.add_argument("--fold", default="0", help="validation fold 0-4 from lesions.csv, or 'all' (default 0)")
    train.add_argument("--epochs", type=int, default=PAPER.epochs,
                       help=f"training epochs (default {PAPER.epochs}, the paper's)")
    train.add_argument("--grid", type=int, default=None,
                       help="input edge in voxels; crops are resized to it (default: the crops' own size)")
    train.add_argument("--pretrained", metavar="PATH", default=None,
                       help="MedicalNet resnet_10 checkpoint (resnet_10.pth / resnet_10_23dataset.pth) for the backbone")
    add_device(train)
    train.add_argument("--batch-size", type=int, default=PAPER.batch_size,
                       help=f"lesions per step (default {PAPER.batch_size}, the paper's)")
    train.add_argument("--lr", type=float, default=PAPER.learning_rate,
                       help=f"Adam learning rate (default {PAPER.learning_rate:g}, the paper's)")
    train.add_argument("--plain", action="store_true",
                       help="undilated ResNet-10 (output stride 32) instead of MedicalNet's dilated one")
    train.add_argument("--no-augment", action="store_true", help="switch off rotation/translation/noise augmentation")
    train.add_argument("--no-resume", action="store_true", help="start afresh even if checkpoint_latest.pth exists")
    train.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.set_defaults(func=_run_train)

    calibrate = actions.add_parser(
        "calibrate", help="fit a temperature on the folds' out-of-fold predictions",
        description="Runs every DIR/fold_<k>/checkpoint_best.pth on fold k's validation lesions, fits one "
                    "temperature by likelihood and writes DIR/calibration.json (temperature, ECE before/after on "
                    "held-out folds); assemble-models --classifier DIR puts it in the models folder.")
    calibrate.add_argument("lesions_dir", metavar="LESIONS_DIR", help="the RenalLesions folder the folds trained on")
    add_output(calibrate, "the classifier folder (with fold_<k>/ of at least two numbered folds)", metavar="DIR")
    add_device(calibrate)
    calibrate.set_defaults(func=_run_calibrate)

    predict = actions.add_parser("predict", help="classify the lesions of a label image with a fold ensemble")
    add_input(predict, "CT (NIfTI file or DICOM series folder), HU")
    predict.add_argument("--lesions", required=True, help="lesion label image on the CT's grid, one id per lesion")
    predict.add_argument("-c", "--checkpoints", nargs="+", required=True, help="classifier checkpoints, one per fold")
    add_output(predict, "folder for lesions.json and the Grad-CAM NIfTI/PNG files")
    predict.add_argument("--no-cam", action="store_true", help="skip Grad-CAM maps")
    add_device(predict)
    add_backend(predict)
    predict.set_defaults(func=_run_predict)


def _run_train(args) -> int:
    from renal_nnunet.classification.train import ClassifierTrainConfig, train_classifier

    fold = None if args.fold == "all" else int(args.fold)
    config = ClassifierTrainConfig(
        fold=fold, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, grid=args.grid,
        dilated=not args.plain, pretrained=args.pretrained, device=resolve_device(args.device), augment=not args.no_augment,
        seed=args.seed, num_workers=args.workers, resume=not args.no_resume,
    )
    print(f"best checkpoint: {train_classifier(args.lesions_dir, args.output, config)}")
    return 0


def _run_calibrate(args) -> int:
    from pathlib import Path

    from renal_nnunet.classification.calibration import calibrate_classifier
    from renal_nnunet.classification.train import BEST_CHECKPOINT

    folds = {int(p.parent.name.split("_")[1]): p for p in Path(args.output).glob(f"fold_[0-9]*/{BEST_CHECKPOINT}")}
    if len(folds) < 2:
        raise ValueError(f"{args.output}: calibration needs at least two numbered folds (fold_<k>/{BEST_CHECKPOINT})")
    result = calibrate_classifier(args.lesions_dir, args.output, folds, resolve_device(args.device))
    print(f"temperature {result['temperature']:.3f}; ECE {result['ece_before']:.3f} before, "
          f"{result['ece_after']:.3f} after (held-out folds, {result['lesions']} lesions)")
    return 0


def _run_predict(args) -> int:
    from renal_nnunet.classification.ensemble import ClassifierEnsemble
    from renal_nnunet.classification.predict import classify_lesion_files

    written = classify_lesion_files(args.input, args.lesions, ClassifierEnsemble(args.checkpoints, runtime_of(args)),
                                    args.output, cam=not args.no_cam)
    print(f"wrote {written}")
    return 0
