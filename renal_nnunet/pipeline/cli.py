"""Subcommands of this stage (see renal_nnunet.cli): predict, assemble-models, export-models, import-models, demo,
compare."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from renal_nnunet.cli_options import (
    add_backend,
    add_device,
    add_folds,
    add_input,
    add_models,
    add_output,
    add_precision,
    non_negative_mm,
    positive_int,
    probability,
    resolve_device,
    runtime_of,
    shipped_folds,
)
from renal_nnunet.settings import PAPER


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands."""
    predict = subparsers.add_parser(
        "predict", help="segment kidneys and renal masses, classify the masses, write tables and a report",
        description="Outputs per case: <case>_seg.nii.gz (0 background, 1 right kidney, 2 left kidney, 3 AML, "
                    "4 cystic, 5 solid, 6 mass too small to classify; the input's exact geometry), "
                    "<case>_lesions.csv/.json, <case>_report.png, <case>_lesion<k>_gradcam.nii.gz, label names and "
                    "colours for ITK-SNAP (<case>_seg_itksnap.txt) and 3D Slicer (<case>_seg.ctbl), and "
                    "<case>_outputs.json, written last (a case without it is incomplete). An existing output folder "
                    "is reused: each case predicted replaces all earlier outputs of that case; each run's summary is "
                    "kept in predict_runs/.")
    add_input(predict, "a NIfTI file, a folder of NIfTI files, a DICOM series folder, or a folder of series folders "
                       "(CASE_0000.nii.gz is case CASE)", type=Path)
    add_output(predict, "output folder", type=Path)
    add_models(predict, "models folder (with manifest.json)", type=Path)
    add_folds(predict, all_shipped=True)
    add_device(predict)
    add_backend(predict)
    add_precision(predict)
    predict.add_argument("--no-cam", action="store_true", help="skip Grad-CAM maps")
    predict.add_argument("--no-report", action="store_true", help="skip the report PNG")
    predict.add_argument("--min-diameter-mm", type=non_negative_mm, default=None,
                         help="classify masses at least this large, mm (average diameter; default: the models "
                              f"folder's, {PAPER.size_threshold_mm:g} mm as in the paper)")
    predict.add_argument("--skip-intensity-check", action="store_true", help="accept inputs that do not look like CT in HU")
    predict.add_argument("--series-uid", default=None,
                         help="SeriesInstanceUID of the series to read from a DICOM folder holding several")
    predict.add_argument("--dicom-seg", action="store_true",
                         help="for DICOM series inputs also write <case>_seg.dcm (DICOM SEG) and <case>_sr.dcm "
                              "(TID 1500 measurement report); where they cannot be written the case keeps its "
                              "other outputs, a note says why, and the exit code is 1")
    predict.add_argument("--review-below-probability", type=probability, default=None,
                         help="flag a classified mass as indeterminate when its calibrated class probability is "
                              "below this (default: PredictConfig's, see README 'Calibrated classes')")
    predict.add_argument("--review-below-agreement", type=probability, default=None,
                         help="...or when the share of classifier folds voting for its class is below this "
                              "(default: PredictConfig's)")
    predict.add_argument("--nephrometry", action=argparse.BooleanOptionalAction, default=True,
                         help="R.E.N.A.L., PADUA and C-index of every mass in the lesion table, report and SR (default: "
                              "on; points for solid and AML masses, measurements for the others)")
    predict.add_argument("--num-parts", type=positive_int, default=1, help="split the inputs into this many parts (as nnUNetv2_predict)")
    predict.add_argument("--part-id", type=int, default=0, help="which part this run predicts (0-based)")
    predict.add_argument("--continue", "--continue_prediction", dest="continue_prediction", action="store_true",
                         help="skip cases whose complete outputs from these models are already in the output folder "
                              "(as nnUNetv2_predict --continue_prediction); an interrupted case is predicted again")
    predict.set_defaults(func=_predict)

    assemble = subparsers.add_parser(
        "assemble-models", help="make a models folder from trained nnU-Net kidney and mass models and a classifier",
        description="Checks the inputs (stage labels, one grid, trained folds, classifier classes), then copies "
                    "(or links) the folds' checkpoints, plans and dataset.json and the classifier's "
                    "fold_*/checkpoint_best.pth into OUTPUT and writes OUTPUT/manifest.json for predict.")
    assemble.add_argument("--kidney", required=True, type=Path, metavar="RESULTS",
                          help="kidney model: nnU-Net trainer output folder "
                               "(.../Dataset501_RenalKidney128/nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres)")
    assemble.add_argument("--mass", required=True, type=Path, metavar="RESULTS",
                          help="mass model: nnU-Net trainer output folder of Dataset*_RenalMass{G}")
    assemble.add_argument("--classifier", required=True, type=Path, metavar="DIR",
                          help="folder written by `renal-nnunet classifier train -o DIR` (every fold_*/ is shipped)")
    add_output(assemble, "models folder to create (must not exist or be empty)", type=Path)
    add_folds(assemble)
    assemble.add_argument("--margin-mm", type=non_negative_mm, default=PAPER.kidney_margin_mm,
                          help="kidney-crop margin the mass model was converted with, mm "
                               f"(default {PAPER.kidney_margin_mm:g}, the paper's and convert's)")
    assemble.add_argument("--training-data", choices=("synthetic", "real", "unknown"), default="unknown",
                          help="what the models were trained on, recorded in the manifest (predict warns about "
                               "synthetic-trained models)")
    assemble.add_argument("--link", action="store_true",
                          help="symlink the files instead of copying them (export-models still packs real files)")
    assemble.set_defaults(func=_assemble)

    compile_parser = subparsers.add_parser(
        "compile-models", help="convert every network of a models folder to OpenVINO now (predict on the CPU "
                               "otherwise does it on first use); the files are cached next to each checkpoint; "
                               "with --precision int8|bf16|auto also quantise and measure against fp32")
    add_models(compile_parser, "models folder (with manifest.json)", type=Path)
    add_folds(compile_parser, all_shipped=True)
    add_precision(compile_parser, help="fp32 (default: convert only), int8 or auto (NNCF quantisation per fold, "
                                       "then INT8 and, where the CPU has it natively, bf16 measured against "
                                       "fp32), bf16 (bf16 measured against fp32)")
    compile_parser.set_defaults(precision="fp32")
    compile_parser.add_argument("--calibration", type=Path, default=None, metavar="NNUNET_RAW",
                                help="nnU-Net raw folder holding the stages' training datasets and the converter's "
                                     "RenalLesions crops: INT8 calibrates on part of them, agreement is measured on "
                                     "the rest (needed unless --precision fp32)")
    compile_parser.add_argument("--calibration-cases", type=int, default=None, metavar="N",
                                help="grid images (lesion crops) per stage INT8 calibrates on (default 16)")
    compile_parser.add_argument("--held-out-cases", type=int, default=None, metavar="N",
                                help="most held-out cases per stage the agreement is measured on (default 16)")
    compile_parser.add_argument("--accuracy-control-cases", type=int, default=None, metavar="N",
                                help="further cases per U-Net stage (neither calibration nor held-out) on which "
                                     "NNCF's accuracy control returns INT8 operations to fp32 until the worst Dice "
                                     "meets the stage's bound (default 16; 0: off)")
    compile_parser.add_argument("--accuracy-control-share", type=float, default=None, metavar="F",
                                help="share of the stage's Dice slack (1 - its bound) accuracy control may spend on "
                                     "its own cases; the rest is kept for CTs unlike the training data (default 0.5; "
                                     "1: all of it, faster INT8 that may miss the bound on such CTs)")
    compile_parser.set_defaults(func=_compile_models)

    export = subparsers.add_parser("export-models", help="pack a models folder into a zip to share "
                                                         "(with the OpenVINO files compile-models wrote)")
    add_models(export, "models folder to pack", type=Path)
    add_output(export, "zip file to write", type=Path)
    export.set_defaults(func=_export)

    imp = subparsers.add_parser("import-models", help="unpack and validate a models zip")
    add_input(imp, "zip made by export-models", type=Path)
    add_models(imp, "models folder to create", type=Path)
    imp.add_argument("--overwrite", action="store_true", help="replace an existing models folder")
    imp.set_defaults(func=_import)

    demo = subparsers.add_parser("demo", help="synthetic cohort -> convert -> train briefly -> predict -> evaluate")
    add_output(demo, "output folder (default demo_output)", type=Path, default=Path("demo_output"))
    demo.add_argument("--cases", type=int, default=None, help="synthetic cases (training + held-out)")
    demo.add_argument("--grid", type=int, default=None, help="grid edge in voxels (paper: 128)")
    demo.add_argument("--minutes", type=float, default=None,
                      help="time budget per fold; picks the demo's named training length (2min or 12min)")
    demo.add_argument("--generator", choices=("randomised", "ellipsoid"), default=None,
                      help="synthetic CT: domain-randomised torsos (default; models meant to transfer to real CT) "
                           "or the earlier one-contrast ellipsoid phantoms")
    demo.add_argument("--kits-shapes", default=None, metavar="DIR|shared|none",
                      help="KiTS23 dataset/ folder whose mass-free kidneys, tumours and cysts the randomised "
                           "generator places into its torsos; 'shared' (default) takes ../shared/kits23 or "
                           "$RENAL_KITS23_DIR when present, 'none' keeps ellipsoid kidneys and masses")
    demo.add_argument("--phase", default=None, metavar="PHASE",
                      help="one contrast phase for every randomised case, e.g. nephrographic (an ablation; "
                           "default: drawn per case; an unknown name is refused with the list)")
    demo.add_argument("--field-of-view", default=None, metavar="RANGE",
                      help="one scan range for every randomised case, e.g. abdomen (an ablation; default: drawn "
                           "per case; an unknown name is refused with the list)")
    add_device(demo)
    demo.add_argument("--compare", action="store_true", help="also train and compare the one-stage baselines")
    demo.set_defaults(func=_demo)

    compare = subparsers.add_parser(
        "compare", help="cascade vs nnU-Net baselines (any trained model: 3d_fullres, the 3d_lowres -> "
                        "3d_cascade_fullres cascade, ResEnc presets) and the one-stage grid ablation, per case, with "
                        "paired statistics; on a test set or out of fold over cross-validation")
    add_models(compare, "models folder of the cascade", type=Path)
    compare.add_argument("--baseline", action="append", default=[], metavar="NAME=TRAINED_MODEL_FOLDER",
                         help="an nnU-Net trained-model folder (TRAINER__PLANS__CONFIGURATION) run by nnU-Net's own "
                              "predictor; repeat for several. A 3d_cascade_fullres folder runs the 3d_lowres folder "
                              "beside it first (or the one given by --previous-stage)")
    compare.add_argument("--previous-stage", action="append", default=[], metavar="NAME=TRAINED_MODEL_FOLDER",
                         help="the previous stage (3d_lowres) of the cascade baseline NAME, where it is not beside it")
    compare.add_argument("--one-stage-model", type=Path, default=None,
                         help="nnU-Net trained-model folder of the paper's one-stage grid ablation (Dataset*_RenalOneStage{G})")
    compare.add_argument("--fullres-model", type=Path, default=None,
                         help="shorthand for --baseline nnunet_3d_fullres=FOLDER")
    add_input(compare, "CTs, as predict takes them: a NIfTI file, a folder of NIfTI files, a DICOM series "
                       "folder, or a folder of series folders (named by case id)", type=Path)
    compare.add_argument("-r", "--references", required=True, type=Path,
                         help="folder of reference label maps named by case id (or KiTS case folders), or one file")
    compare.add_argument("--ref-format", choices=("pipeline", "kits"), default="pipeline",
                         help="reference labels: pipeline 0-6 (default) or KiTS 0 background/1 kidney/2 tumour/3 cyst")
    compare.add_argument("--ref-kidney", choices=("paper", "kits"), default="paper",
                         help="kidney of KiTS references: paper (default; sinus filled, as convert makes the training "
                              "labels) or kits (KiTS's own)")
    compare.add_argument("--cross-validation", action="store_true",
                         help="score every case out of fold: fold k's validation cases (--splits) predicted by each "
                              "method's fold-k models only; -f picks the folds scored")
    compare.add_argument("--splits", type=Path, default=None,
                         help="the converter's splits_final.json (kidney or one-stage dataset) for --cross-validation")
    add_output(compare, "folder for each method's predictions, evaluations, comparison.csv, per_case.csv, "
                        "statistics.csv, comparison.md and boxplots.png", type=Path)
    add_folds(compare, all_shipped=True)
    add_device(compare)
    add_backend(compare)
    add_precision(compare)
    compare.set_defaults(func=_compare)


def _predict(args: argparse.Namespace) -> int:
    from renal_nnunet.pipeline.predict import PredictConfig, predict

    config = PredictConfig(
        folds=shipped_folds(args.folds), device=resolve_device(args.device), cam=not args.no_cam, report=not args.no_report,
        min_classify_diameter_mm=args.min_diameter_mm, check_intensities=not args.skip_intensity_check,
        num_parts=args.num_parts, part_id=args.part_id, series_uid=args.series_uid,
        dicom_seg=args.dicom_seg, backend=args.backend, precision=args.precision,
        continue_prediction=args.continue_prediction, nephrometry=args.nephrometry,
        **{name: getattr(args, name) for name in ("review_below_probability", "review_below_agreement")
           if getattr(args, name) is not None},
    )
    results = predict(args.input, args.output, args.models, config)
    for r in results:
        if r.status == "failed":
            print(f"{r.case_id}: FAILED: {r.error}")
            continue
        if r.status == "skipped":
            print(f"{r.case_id}: skipped (complete outputs of these models exist)")
            continue
        classes = ", ".join(f"{x.side} {x.lesion_class}{' (indeterminate)' if x.indeterminate else ''} "
                            f"{x.average_diameter_mm:.0f} mm" for x in r.lesions) or "no masses"
        print(f"{r.case_id}: {r.status} ({r.seconds:.1f} s): {classes}")
        for message in r.messages:
            print(f"  note: {message}")
    failed = sum(r.status == "failed" for r in results)
    print(f"{len(results) - failed}/{len(results)} case(s) predicted into {args.output}")
    incomplete = [r.case_id for r in results if r.output_errors]
    if incomplete:
        print(f"outputs asked for were not written for {len(incomplete)} case(s) (see their notes): "
              f"{', '.join(incomplete)}")
    return 1 if failed or incomplete else 0


def _assemble(args: argparse.Namespace) -> int:
    from renal_nnunet.classification.calibration import CALIBRATION_FILE
    from renal_nnunet.pipeline.models import assemble_models, find_classifier_checkpoints

    if "all" in args.folds:
        raise ValueError("assemble-models ships numbered folds (--folds 0 1 ...), not nnU-Net's fold 'all'")
    calibration_file = args.classifier / CALIBRATION_FILE
    calibration = json.loads(calibration_file.read_text()) if calibration_file.is_file() else None
    manifest = assemble_models(args.output, args.kidney, args.mass, find_classifier_checkpoints(args.classifier),
                               folds=[int(f) for f in args.folds], margin_mm=args.margin_mm, link=args.link,
                               training_data=args.training_data, classifier_calibration=calibration)
    print(f"assembled models (grid {manifest.grid}, folds {list(manifest.kidney.folds)}, "
          f"{len(manifest.classifier)} classifier checkpoint(s)) into {args.output}")
    return 0


def _compile_models(args: argparse.Namespace) -> int:
    from renal_nnunet.pipeline.compile_models import compile_models

    from renal_nnunet.pipeline.quantization import QuantizationConfig

    settings = {name: value for name, value in (("calibration_cases", args.calibration_cases),
                                                ("validation_cases", args.held_out_cases),
                                                ("accuracy_control_cases", args.accuracy_control_cases),
                                                ("accuracy_control_share", args.accuracy_control_share))
                if value is not None}
    result = compile_models(args.models, shipped_folds(args.folds), args.precision, args.calibration,
                            QuantizationConfig(**settings))
    for path in result["files"]:
        print(path)
    for stage, agreement in result["agreement"].items():
        for precision, check in agreement.checks.items():
            verdict = "meets the bounds" if check.passed else "BELOW the bounds: " + "; ".join(check.failures)
            figures = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in check.figures.items())
            print(f"{stage} {precision} vs fp32 on {check.cases} held-out case(s): {verdict} ({figures})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from renal_nnunet.pipeline.models import export_models

    print(f"wrote {export_models(args.models, args.output)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from renal_nnunet.pipeline.models import import_models

    manifest = import_models(args.input, args.models, overwrite=args.overwrite)
    print(f"imported models (grid {manifest.grid}, folds {list(manifest.kidney.folds)}) into {args.models}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from renal_nnunet.pipeline.demo import DemoConfig, run_demo

    overrides = {k: v for k, v in (("cases", args.cases), ("grid", args.grid), ("minutes", args.minutes),
                                   ("generator", args.generator), ("phase", args.phase),
                                   ("field_of_view", args.field_of_view)) if v is not None}
    if args.kits_shapes is not None:
        overrides["kits_shapes"] = None if args.kits_shapes == "none" else args.kits_shapes
    summary = run_demo(args.output, DemoConfig(device=resolve_device(args.device), compare=args.compare, **overrides))
    print(summary.text)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from renal_nnunet.inference.baselines import Baseline, parse_baseline
    from renal_nnunet.pipeline.compare import ComparisonConfig, compare_methods

    if args.cross_validation != (args.splits is not None):
        raise ValueError("--cross-validation and --splits SPLITS_JSON go together (the splits say which fold holds "
                         "each case out)")
    specs = [parse_baseline(spec) for spec in args.baseline]
    if args.fullres_model is not None:
        specs.append(("nnunet_3d_fullres", args.fullres_model))
    previous = dict(parse_baseline(spec) for spec in args.previous_stage)
    unknown = sorted(set(previous) - {name for name, _ in specs})
    if unknown:
        raise ValueError(f"--previous-stage names no --baseline: {', '.join(unknown)}")
    baselines = [Baseline.of(name, folder, previous.get(name)) for name, folder in specs]
    folds = shipped_folds(args.folds)
    config = ComparisonConfig(folds=folds, splits=args.splits, ref_format=args.ref_format, ref_kidney=args.ref_kidney)
    result = compare_methods(args.input, args.references, args.output, args.models, runtime_of(args), baselines,
                             args.one_stage_model, config)
    print(result.table.to_string(float_format=lambda v: f"{v:.3f}"))
    for name in ("comparison.md", "per_case.csv", "statistics.csv", "boxplots.png"):
        print(f"{name}: {result.files[name]}")
    return 0
