"""Benchmark: the cascade of `renal-nnunet predict` (grid 128, 5 folds per stage) on each inference
backend (PyTorch and OpenVINO), and against stock `nnUNetv2_predict` of the 3d_fullres baseline, on
one synthetic 512x512x150 CT, in one run.

What it does (everything in --work):
1. a small synthetic cohort at the benchmark CT's geometry (512x512 in-plane, 150 slices,
   0.78 x 0.78 x 2.5 mm), converted with grid 128 by the project's converter;
2. stock planning/preprocessing, then fold 0 of the kidney and mass models as nnU-Net's trainer
   initialises them (random weights, saved by its own ``save_checkpoint``; no training) and copied
   as folds 1-4, and one classifier fold trained for one epoch and copied as the other four: the
   weights are for timing only, and the work of a fold does not depend on them (a 128^3 training
   iteration alone takes about 90 s on 2 cores).
   The native one-stage baseline's folds (fold 0 only with --baseline-one-fold) are trained only
   when its side is timed. Every network
   is then converted to OpenVINO once (``compile_models``, its time reported as ``compile_s``), as
   a first ``predict`` on the CPU or ``renal-nnunet compile-models`` would;
3. a held-out synthetic CT of the same geometry with its reference labels, predicted by each side
   in a child process: wall time and peak resident memory of each
   (:func:`renal_nnunet.runtime.measure.run_measured`), and the ratios.
   Each backend's cascade runs in its own child; ``network_s`` is the time inside the forward
   passes (nnU-Net's sliding window per fold and the classifier's passes), ``stages_s`` the wall
   time of each stage. The cascade children run with nnU-Net's default thread limit (both
   backends use every core).

Cascade side: the stages ``predict`` runs (kidney model on the whole CT, mass-model ensemble per
kidney box, classifier ensemble with Grad-CAM per mass, seg and Grad-CAM NIfTIs written), with the
kidney boxes and masses taken from the reference: models trained for a few CPU iterations segment
nonsense (whole halves of the CT, hundreds of blobs), while the work per box and per mass does not
depend on the weights. The reference's kidneys and sides are made once with the test CT (the
converter's work, not ``predict``'s). Timed with 5 folds per stage (the target) and with fold 0 alone.

Baseline side: with --baseline-one-fold, fold 0 without mirroring; its sliding-window time (from
nnU-Net's own progress bar) is the network time of one fold pass, the rest of its wall time the
fixed cost (reading, resampling, export), and the default (5 folds, 8 mirrorings) is estimated as
fixed + 5 x 8 x network (on a CPU the default itself takes many hours). nnUNetv2_predict's
preprocessing/export workers are separate processes, so its peak memory is that of the main process.

Usage: python scripts/bench_predict.py --work /tmp/renal_bench [--device cpu] [--baseline-one-fold]
       [--build-only] [--sides cascade baseline] [--json PATH]

Runtimes (:func:`bench_runtimes`): PyTorch fp32 (``torch``), OpenVINO fp32 (``openvino``) and
OpenVINO at the best precision the CPU runs natively (``openvino_int8``: INT8 wherever OpenVINO
has it, else ``openvino_bf16``). Its INT8 models are quantised by ``compile_models`` on two
calibration images per stage of the bench's own converted data (see :data:`QUANTISATION`).

``--json PATH`` writes ``{"cpu": {"model", "flags"}, "backends": {"torch": {"backend", "precision",
"wall_s", "peak_rss_gb", "stages_s", "network_s", "stage_precisions"}, "openvino": {...},
"openvino_int8": {...}}, "ratios": {...}, "forward_passes": {...}}``; every row also goes to
``WORK/bench_predict.json``. ``forward_passes`` (measured in the parent after the children) holds
one U-Net and one classifier pass per runtime and the cascade's network floor: the time its
forward passes alone take, which no work around the network can cut.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

BENCH_SHAPE_ZYX = (150, 512, 512)
BENCH_SPACING_ZYX_MM = (2.5, 0.78, 0.78)
BASELINE_TRAINER = "nnUNetTrainer_CPUsmoke"
"""Stock nnU-Net for 1 epoch x 5 iterations (timing only), a named variant of this package."""
BENCH_BACKENDS = ("torch", "openvino")


def bench_runtimes() -> dict[str, tuple[str, str]]:
    """The runtimes timed, by row name: torch fp32, OpenVINO fp32, and OpenVINO at the best precision
    this CPU runs natively (INT8 wherever OpenVINO has it, else bf16; nothing more if neither)."""
    from renal_nnunet.runtime.cpu import native_precisions

    runtimes = {"torch": ("torch", "fp32"), "openvino": ("openvino", "fp32")}
    best = next((p for p in ("int8", "bf16") if p in native_precisions()), None)
    if best:
        runtimes[f"openvino_{best}"] = ("openvino", best)
    return runtimes


def _sliding_window_seconds(log_path: Path) -> float | None:
    """Elapsed time of nnU-Net's finished sliding-window progress bar ('125/125 [36:30<00:00'):
    the longest finished bar (the case-level bar of a one-case run is short)."""
    pattern = r"(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<"
    elapsed = [3600.0 * int(m.group(3) or 0) + 60.0 * int(m.group(4)) + int(m.group(5))
               for m in re.finditer(pattern, log_path.read_text(errors="replace")) if m.group(1) == m.group(2)]
    return max(elapsed, default=None)


def _build_models(work: Path, args) -> dict:
    from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
    from renal_nnunet.nnunet.commands import plan
    from renal_nnunet.nnunet.environment import NnunetFolders, nnunet_environment, nnunet_output_to
    from renal_nnunet.pipeline.training import train_stage
    from renal_nnunet.synthetic import write_synthetic_kits

    folders = NnunetFolders.under(work / "nnunet")
    geometry = {"shape_zyx": BENCH_SHAPE_ZYX, "spacing_zyx_mm": BENCH_SPACING_ZYX_MM}
    if not (work / "models").exists():
        if not (folders.raw / "RenalLesions" / "lesions.csv").is_file():
            # every case with masses: the classifier fold needs lesions to validate on
            src = write_synthetic_kits(work / "synthetic", args.cases, seed=11, mass_free_every=None, **geometry)
            convert_kits(src, folders.raw, ConversionConfig(first_id=args.first_id, grid=128))
        with nnunet_output_to(work / "nnunet_output.log"):
            _train_fold_0_as_5_folds(folders, work, args)
    native = args.first_id + 3
    compile_s = _compile_all(work / "models", folders.raw)
    if "baseline" not in args.sides:
        return {"folders": folders, "native": native, "compile_s": compile_s, **_test_case(work, geometry)}
    with nnunet_environment(folders), nnunet_output_to(work / "nnunet_output.log"):
        results = folders.results
        baseline = next(results.glob(f"Dataset{native:03d}_*/{BASELINE_TRAINER}__nnUNetPlans__3d_fullres"), None)
        native_folds = range(1) if args.baseline_one_fold else range(5)
        trained = baseline is not None and all(
            (baseline / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in native_folds)
        if not trained:
            if baseline is None:
                plan(native, verify=False)
            for fold in native_folds:
                train_stage(native, fold, BASELINE_TRAINER, args.device)
    return {"folders": folders, "native": native, "compile_s": compile_s, **_test_case(work, geometry)}


def _train_fold_0_as_5_folds(folders, work: Path, args) -> None:
    """Fold 0 of each U-Net and one classifier fold, trained briefly and copied as folds 1-4 (what
    is timed does not depend on the weights), assembled into ``work/models``. Steps already done
    (planned dataset, trained fold) are kept."""
    import shutil

    from renal_nnunet.classification.train import ClassifierTrainConfig, train_classifier
    from renal_nnunet.nnunet.commands import plan
    from renal_nnunet.nnunet.environment import nnunet_environment
    from renal_nnunet.pipeline.models import assemble_models

    trainer, model_dirs = "nnUNetTrainerRenalPaper_CPUsmoke", []
    with nnunet_environment(folders):
        for dataset in (args.first_id, args.first_id + 1):
            if not list(folders.preprocessed.glob(f"Dataset{dataset:03d}_*/nnUNetPlans.json")):
                plan(dataset, verify=False)
            model_dir = next(folders.results.glob(f"Dataset{dataset:03d}_*/{trainer}__nnUNetPlans__3d_fullres"), None)
            if model_dir is None or not (model_dir / "fold_0" / "checkpoint_final.pth").is_file():
                model_dir = _untrained_fold_0(dataset, trainer, args.device)
            for fold in range(1, 5):
                if not (model_dir / f"fold_{fold}").exists():
                    shutil.copytree(model_dir / "fold_0", model_dir / f"fold_{fold}")
            model_dirs.append(model_dir)
    classifier = work / "classifier_work" / "classifier"
    first = train_classifier(folders.raw / "RenalLesions", classifier,
                             ClassifierTrainConfig(fold=0, epochs=1, device=args.device))
    checkpoints = [first]
    for fold in range(1, 5):
        copy = classifier / f"fold_{fold}" / first.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(first, copy)
        checkpoints.append(copy)
    assemble_models(work / "models", *model_dirs, checkpoints, list(range(5)))


def _untrained_fold_0(dataset: int, trainer: str, device: str) -> Path:
    """Fold 0 of a dataset's U-Net as nnU-Net's trainer initialises it, saved as its final checkpoint."""
    import shutil

    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from renal_nnunet.nnunet.environment import training_environment
    from renal_nnunet.trainers.registration import trainer_lookup

    with trainer_lookup(), training_environment(device):
        nnunet_trainer = get_trainer_from_args(str(dataset), "3d_fullres", 0, trainer, "nnUNetPlans",
                                               device=torch.device(device))
        nnunet_trainer.initialize()
        Path(nnunet_trainer.output_folder).mkdir(parents=True, exist_ok=True)
        nnunet_trainer.save_checkpoint(str(Path(nnunet_trainer.output_folder) / "checkpoint_final.pth"))
    model_dir = Path(nnunet_trainer.output_folder_base)
    # what nnU-Net's on_train_start writes beside the folds
    (model_dir / "plans.json").write_text(json.dumps(nnunet_trainer.plans_manager.plans, indent=2))
    (model_dir / "dataset.json").write_text(json.dumps(nnunet_trainer.dataset_json, indent=2))
    shutil.copy(Path(nnunet_trainer.preprocessed_dataset_folder_base) / "dataset_fingerprint.json", model_dir)
    return model_dir


QUANTISATION = {"calibration_cases": 2, "validation_cases": 1, "accuracy_control_cases": 0}
"""The bench's INT8: two calibration grid images (crops) per stage, one held out, no accuracy
control. Its models have random weights, so their measured agreement means nothing (logits without
margin): the INT8 row runs with ``--precision int8`` asked for, as a deployment whose stages met the
bounds would, with every operation quantised (accuracy control returns some to fp32: 27 of 31 on
the default demo's mass U-Net at the default share, see ``QuantizationConfig``)."""


def _compile_all(models, raw) -> float:
    """Seconds to convert every network of the models folder to OpenVINO and, for the best precision
    the CPU has, quantise and measure them (0 when cached).

    Folds 1-4 are copies of fold 0 (same checkpoint content, so the same cache names), so fold 0's
    conversion and INT8 model are copied to them instead of being made four more times."""
    import shutil

    from renal_nnunet.classification.ensemble import ClassifierEnsemble
    from renal_nnunet.nnunet.layout import fold_checkpoint
    from renal_nnunet.pipeline.compile_models import compile_models
    from renal_nnunet.pipeline.models import load_models
    from renal_nnunet.pipeline.quantization import QuantizationConfig, measure_classifier, measure_unet_stage
    from renal_nnunet.runtime.backends import Runtime

    started = time.perf_counter()
    manifest = load_models(models)
    precisions = [precision for _, precision in bench_runtimes().values() if precision != "fp32"]
    if _measured(models, manifest, precisions):
        return 0.0
    config = QuantizationConfig(precisions=tuple(precisions), **QUANTISATION)
    copies = []
    for stage in (manifest.kidney, manifest.mass):
        stage_dir = models / stage.path
        if precisions:
            measure_unet_stage(stage_dir, (0,), raw, config)
        copies += [(fold_checkpoint(stage_dir, 0), fold_checkpoint(stage_dir, fold)) for fold in stage.folds[1:]]
    first = models / manifest.classifier[0]
    if precisions:
        measure_classifier([first], raw, config)
    ClassifierEnsemble([first], Runtime("openvino", "cpu", "fp32")).load_folds()
    copies += [(first, models / other) for other in manifest.classifier[1:]]
    for source, copy in copies:
        for cached in source.parent.glob(f"{source.stem}.openvino-*"):
            shutil.copy(cached, copy.parent / cached.name.replace(source.stem, copy.stem, 1))
    compile_models(models, precision=precisions[0] if precisions else "fp32", calibration=raw, config=config)
    return time.perf_counter() - started


def _measured(models: Path, manifest, precisions: list[str]) -> bool:
    """Whether every stage's fp32 conversions are cached and its agreement with fp32 is recorded
    for ``precisions`` with its current checkpoints (a later bench run then converts nothing)."""
    from renal_nnunet.nnunet.layout import fold_checkpoint
    from renal_nnunet.runtime.agreement import read_stage_agreement
    from renal_nnunet.runtime.openvino import compiled_model_path

    stages = [(models / s.path, [fold_checkpoint(models / s.path, f) for f in s.folds])
              for s in (manifest.kidney, manifest.mass)]
    stages.append((models / "classifier", [models / c for c in manifest.classifier]))
    for folder, checkpoints in stages:
        agreement = read_stage_agreement(folder, checkpoints)
        if not all(compiled_model_path(c).is_file() for c in checkpoints) or (
                precisions and (agreement is None or set(precisions) - set(agreement.checks))):
            return False
    return True


def _test_case(work: Path, geometry: dict) -> dict:
    """The held-out CT, its reference labels and the reference's kidneys with their sides, as the
    converter makes them (made once: that is not work of ``predict``)."""
    import SimpleITK as sitk

    from renal_nnunet.anatomy.sides import paper_kidney_sides
    from renal_nnunet.anatomy.sinus import SINUS_CLOSING_RADIUS_MM
    from renal_nnunet.io import write_image
    from renal_nnunet.synthetic import make_phantom

    test_dir, reference = work / "test_ct", work / "test_reference" / "bench.nii.gz"
    if not reference.is_file():
        test_dir.mkdir(parents=True, exist_ok=True)
        reference.parent.mkdir(parents=True, exist_ok=True)
        phantom = make_phantom(424242, masses_per_kidney=(1, 2), **geometry)
        sitk.WriteImage(phantom.ct, str(test_dir / "bench_0000.nii.gz"), True)
        sitk.WriteImage(phantom.labels, str(reference), True)
    kidneys = _reference_kidneys_path(work)
    if not kidneys.is_file():
        ct = sitk.ReadImage(str(test_dir / "bench_0000.nii.gz"))
        write_image(paper_kidney_sides(ct, sitk.GetArrayFromImage(sitk.ReadImage(str(reference))),
                                       SINUS_CLOSING_RADIUS_MM), kidneys)
    return {"test_dir": test_dir, "reference": reference}


def _reference_kidneys_path(work: Path) -> Path:
    return work / "test_reference" / "bench_kidneys.nii.gz"


def _cascade_on_reference_regions(work: Path, folds: list[int], device: str, backend: str, precision: str,
                                  out_dir: Path) -> dict:
    """The cascade's stages as ``predict`` runs them: the kidney model on the whole CT, its
    post-processing, the mass stage on the kidneys' boxes and the classifier (with Grad-CAM) on
    the masses, then the seg and CAM NIfTIs written; kidneys and masses are the reference's.
    Models trained for a few iterations segment nonsense (whole halves of the CT, hundreds of
    blobs); the work per box and per mass does not depend on the weights, so this is the cost of
    a CT with its real number of kidneys and masses. Returns seconds per stage and inside the
    forward passes (``network_s``)."""
    import numpy as np
    import SimpleITK as sitk

    from renal_nnunet.anatomy.geometry import image_like, paste_on_grid
    from renal_nnunet.anatomy.labels import KITS_LABELS
    from renal_nnunet.anatomy.lesions import lesion_components
    from renal_nnunet.classification.predict import classify_lesions
    from renal_nnunet.inference.cascade import kidney_boxes, kidneys_from_labels, segment_masses
    from renal_nnunet.inference.grid_to_ct import predict_stage_labels
    from renal_nnunet.io import read_image, read_label_map, write_image
    from renal_nnunet.pipeline.models import load_models
    from renal_nnunet.pipeline.predict import CascadeNetworks
    from renal_nnunet.runtime.backends import NETWORK_CLOCK, Runtime

    models = work / "models"
    manifest = load_models(models, tuple(folds))
    seconds, started = {}, time.perf_counter()
    networks = CascadeNetworks.load(models, manifest, Runtime.resolve(backend, device, precision))
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    ct = read_image(work / "test_ct" / "bench_0000.nii.gz")
    kits = sitk.GetArrayFromImage(read_label_map(work / "test_reference" / "bench.nii.gz", reference=ct))
    seconds["read"] = time.perf_counter() - started
    started = time.perf_counter()
    predict_stage_labels(ct, networks.kidney)
    seconds["kidney"] = time.perf_counter() - started
    reference_kidneys = read_label_map(_reference_kidneys_path(work), reference=ct)
    started = time.perf_counter()
    kidneys = kidneys_from_labels(reference_kidneys, ct).labels  # segment_kidneys' post-processing
    seconds["kidney"] += time.perf_counter() - started
    started = time.perf_counter()
    segment_masses(ct, kidney_boxes(kidneys, manifest.margin_mm), networks.mass)
    seconds["mass"] = time.perf_counter() - started
    components = lesion_components(image_like(np.isin(kits, (KITS_LABELS["tumor"], KITS_LABELS["cyst"])).astype(np.uint8),
                                              ct))
    started = time.perf_counter()
    classified = classify_lesions(ct, components, networks.classifier, cam=True)
    seconds["classification"] = time.perf_counter() - started
    started = time.perf_counter()
    write_image(kidneys, out_dir / "bench_seg.nii.gz")
    for result in classified:
        write_image(paste_on_grid(result.cam, ct), out_dir / f"bench_lesion{result.lesion_id}_gradcam.nii.gz")
    seconds["write"] = time.perf_counter() - started
    return {"stage_seconds": seconds, "network_s": NETWORK_CLOCK.seconds, "lesions": len(classified),
            "precisions": networks.precisions}


def _forward_pass_seconds(work: Path, lesions: int, repeats: int = 3) -> dict:
    """Best-of-``repeats`` seconds of one forward pass of fold 0's kidney U-Net and of a classifier
    fold on each runtime of :func:`bench_runtimes` (random input at each model's grid; OpenVINO
    compiling for the pass as the cascade's U-Nets do), and the cascade's network floor from them:
    its 15 U-Net passes (5 folds x kidney, right box, left box) and 5 classifier passes per mass,
    with nothing else done."""
    import numpy as np
    import torch

    from renal_nnunet.classification.ensemble import ClassifierEnsemble
    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.pipeline.models import load_models
    from renal_nnunet.runtime.backends import Runtime
    from renal_nnunet.runtime.openvino import run_once

    models = work / "models"
    manifest = load_models(models)
    networks, grids = {}, {}
    for name, (backend, precision) in bench_runtimes().items():
        runtime = Runtime(backend, "cpu", precision)
        unet = FoldEnsemble(models / manifest.kidney.path, (0,), runtime)
        classifier, = ClassifierEnsemble([models / manifest.classifier[0]], runtime).load_folds()
        classify = classifier.logits if backend == "torch" else (
            lambda volume, fold=classifier: run_once(fold.model, volume.numpy(), fold.precision))
        networks[name] = {"unet": unet.predictor.network.eval() if backend == "torch" else unet.predictor.fold_networks[0],
                          "classifier": classify}
        grids = {"unet": unet.grid, "classifier": classifier.grid}
    rng = np.random.default_rng(0)
    seconds = {}
    for runtime, pair in networks.items():
        seconds[runtime] = {}
        for name, network in pair.items():
            volume = torch.from_numpy(rng.random((1, 1, *[grids[name]] * 3), np.float32))
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                with torch.no_grad():
                    network(volume)
                times.append(time.perf_counter() - started)
            seconds[runtime][f"{name}_pass_s"] = min(times)
        seconds[runtime]["network_floor_s"] = (15 * seconds[runtime]["unet_pass_s"]
                                               + 5 * lesions * seconds[runtime]["classifier_pass_s"])
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/renal_bench"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--first-id", type=int, default=801)
    parser.add_argument("--baseline-one-fold", action="store_true",
                        help="time the baseline with one fold and no mirroring, and extrapolate")
    parser.add_argument("--build-only", action="store_true", help="make the data and models, then stop")
    parser.add_argument("--sides", nargs="+", choices=("cascade", "baseline"), default=["cascade", "baseline"],
                        help="which side(s) to time now; results are merged into bench_predict.json")
    parser.add_argument("--json", type=Path, default=None, help="also write the backends' figures here")
    parser.add_argument("--cascade-child", type=int, nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=BENCH_BACKENDS, default="openvino", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.cascade_child is not None:  # the measured child process of a cascade row
        result = _cascade_on_reference_regions(args.work, args.cascade_child, args.device, args.backend,
                                               args.precision, args.child_out)
        (args.child_out / "stages.json").write_text(json.dumps(result))
        return 0
    built = _build_models(args.work, args)
    if args.build_only:
        return 0
    folders = built["folders"]
    env = {**os.environ, "nnUNet_raw": str(folders.raw), "nnUNet_preprocessed": str(folders.preprocessed),
           "nnUNet_results": str(folders.results), "nnUNet_n_proc_DA": "1", "nnUNet_def_n_proc": "1"}
    from renal_nnunet.trainers.registration import ext_trainer_search_path

    env["nnUNet_extTrainer"] = ext_trainer_search_path(env.get("nnUNet_extTrainer"))
    bin_dir = Path(sys.executable).parent

    def cascade(name: str, folds: list[str], backend: str, precision: str = "fp32") -> list[str]:
        return [sys.executable, __file__, "--work", str(args.work), "--device", args.device, "--cascade-child",
                *folds, "--child-out", str(args.work / name), "--backend", backend, "--precision", precision]

    def baseline(name: str, folds: list[str], tta: bool) -> list[str]:
        return [str(bin_dir / "nnUNetv2_predict"), "-i", str(built["test_dir"]), "-o", str(args.work / name), "-d",
                str(built["native"]), "-c", "3d_fullres", "-tr", BASELINE_TRAINER, "-f", *folds, "-device",
                args.device, "-npp", "1", "-nps", "1", *([] if tta else ["--disable_tta"])]

    runs = {}
    if "cascade" in args.sides:
        for runtime, (backend, precision) in bench_runtimes().items():
            runs[f"cascade_5_folds_{runtime}"] = cascade(f"cascade_5_folds_{runtime}", ["0", "1", "2", "3", "4"],
                                                         backend, precision)
    if "cascade" in args.sides and "baseline" in args.sides:
        runs["cascade_fold_0"] = cascade("cascade_fold_0", ["0"], "openvino")
    if "baseline" in args.sides and args.baseline_one_fold:
        runs["nnunet_3d_fullres_fold_0_no_tta"] = baseline("nnunet_fold_0", ["0"], tta=False)
    elif "baseline" in args.sides:
        runs["nnunet_3d_fullres_5_folds"] = baseline("nnunet_5_folds", ["0", "1", "2", "3", "4"], tta=True)
    result_path = args.work / "bench_predict.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {"rows": {}}
    from renal_nnunet.runtime.cpu import cpu_description
    from renal_nnunet.runtime.measure import run_measured

    result.update(ct_shape_zyx=BENCH_SHAPE_ZYX, spacing_zyx_mm=BENCH_SPACING_ZYX_MM, device=args.device,
                  cpu_count=os.cpu_count(), compile_s=built["compile_s"], cpu=cpu_description())
    cascade_env = {k: v for k, v in env.items() if k != "nnUNet_def_n_proc"}
    rows = result["rows"]
    for name, command in runs.items():
        (args.work / name).mkdir(parents=True, exist_ok=True)
        log_path = args.work / f"{name}.log"
        child = run_measured(command, log_path, cascade_env if name.startswith("cascade") else env)
        seconds, peak_gb, code = child.wall_s, child.peak_rss_gb, child.exit_code
        rows[name] = {"seconds": seconds, "peak_rss_gb": peak_gb, "exit_code": code, "command": " ".join(command),
                      "log": str(log_path)}
        if name.startswith("cascade") and code == 0:
            rows[name].update(json.loads((args.work / name / "stages.json").read_text()))
        else:
            rows[name]["sliding_window_s"] = _sliding_window_seconds(log_path)
        print(f"{name}: {seconds:.1f} s, peak RSS {peak_gb:.2f} GB (exit {code}) "
              f"{ {k: v for k, v in rows[name].items() if k in ('stage_seconds', 'lesions', 'sliding_window_s')} }",
              flush=True)
        result_path.write_text(json.dumps(result, indent=2))  # each row as soon as it is measured
    cascade_row = rows.get("cascade_5_folds_openvino") or rows.get("cascade_5_folds_torch")
    if "cascade" in args.sides and cascade_row and cascade_row["exit_code"] == 0:
        result["forward_passes"] = _forward_pass_seconds(args.work, cascade_row["lesions"])
        for backend, passes in result["forward_passes"].items():
            print(f"{backend}: one U-Net pass {passes['unet_pass_s']:.2f} s, one classifier pass "
                  f"{passes['classifier_pass_s']:.2f} s; the cascade's passes alone {passes['network_floor_s']:.0f} s")
    _summarise(result, rows)
    result_path.write_text(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(_backends_json(result, rows), indent=2))
    return 0


def _backends_json(result: dict, rows: dict) -> dict:
    """The ``--json`` file: the CPU, each runtime's cascade figures and their ratios to torch fp32."""
    backends = {}
    for runtime, (backend, precision) in bench_runtimes().items():
        row = rows.get(f"cascade_5_folds_{runtime}")
        if row and row["exit_code"] == 0:
            backends[runtime] = {"backend": backend, "precision": precision, "wall_s": row["seconds"],
                                 "peak_rss_gb": row["peak_rss_gb"], "stages_s": row["stage_seconds"],
                                 "network_s": row["network_s"], "lesions": row["lesions"],
                                 "stage_precisions": row.get("precisions")}
    summary = {"cpu": result.get("cpu"), "backends": backends, "compile_s": result.get("compile_s"),
               "cpu_count": result["cpu_count"], "ct_shape_zyx": list(BENCH_SHAPE_ZYX),
               "forward_passes": result.get("forward_passes")}
    if "torch" in backends:
        torch_row = backends["torch"]
        summary["ratios"] = {}
        for runtime, row in backends.items():
            if runtime == "torch":
                continue
            network, wall = row["network_s"] / torch_row["network_s"], row["wall_s"] / torch_row["wall_s"]
            summary["ratios"].update({f"network_s_{runtime}_over_torch": network, f"wall_s_{runtime}_over_torch": wall})
            print(f"{runtime} / torch: network {network:.2f}x, wall {wall:.2f}x; cascade {row['wall_s']:.0f} s, "
                  f"peak {row['peak_rss_gb']:.2f} GB", flush=True)
    print(f"CPU: {summary['cpu']}", flush=True)
    return summary


def _summarise(result: dict, rows: dict) -> None:
    """Ratios and the baseline's 5-fold estimate from whichever rows are there."""
    one = rows.get("nnunet_3d_fullres_fold_0_no_tta")
    if one and one.get("sliding_window_s") is not None:
        network = one["sliding_window_s"]
        fixed = one["seconds"] - network
        result.update(baseline_network_s_per_fold_pass=network, baseline_fixed_s=fixed,
                      baseline_5_folds_tta_estimated_s=fixed + 5 * 8 * network)  # 5 folds x 8 mirrorings
        print(f"baseline: fixed {fixed:.0f} s + {network:.0f} s of sliding window per fold and mirroring; 5 folds "
              f"with default mirroring estimated {result['baseline_5_folds_tta_estimated_s']:.0f} s")
        if "cascade_fold_0" in rows:
            result["speedup_fold_0_no_mirroring"] = one["seconds"] / rows["cascade_fold_0"]["seconds"]
            print(f"speedup, fold 0 without mirroring on both sides: {result['speedup_fold_0_no_mirroring']:.1f}x")
    baseline_default = result.get("baseline_5_folds_tta_estimated_s") or rows.get(
        "nnunet_3d_fullres_5_folds", {}).get("seconds")
    cascade = rows.get("cascade_5_folds_openvino")
    if baseline_default and cascade:
        result["speedup_5_folds_default"] = baseline_default / cascade["seconds"]
        print(f"speedup, cascade 5 folds vs baseline 5 folds with default mirroring: "
              f"{result['speedup_5_folds_default']:.1f}x (target >= 10x); cascade {cascade['seconds']:.0f} s "
              f"(target <= 60 s), peak {cascade['peak_rss_gb']:.2f} GB (target <= 4 GB)")


if __name__ == "__main__":
    sys.exit(main())
