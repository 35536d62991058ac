"""Benchmark: `renal-nnunet predict` (cascade, grid 128, 5 folds per stage) against stock
`nnUNetv2_predict` of the 3d_fullres baseline on one synthetic 512x512x150 CT, in one run.

What it does (everything in --work):
1. a small synthetic cohort at the benchmark CT's geometry (512x512 in-plane, 150 slices,
   0.78 x 0.78 x 2.5 mm), converted with grid 128 by the project's converter;
2. stock planning/preprocessing, then every nnU-Net fold (kidney, mass, native one-stage) trained for
   --iterations iterations and the classifier for one epoch per fold. The weights are for timing only:
   inference cost does not depend on how long a model was trained (except the number of lesions the
   classifier sees, reported below);
3. a held-out synthetic CT of the same geometry, predicted by both commands as child processes;
   wall time and peak resident memory (os.wait4) of each, and the ratio.

With --baseline-one-fold the baseline runs one fold without mirroring (on a CPU 5 folds with
8x mirroring take hours) and its 5-fold default time is extrapolated as 5 x 8 x that time; the
cascade is then also timed with one fold, and both figures are printed.

Usage: python scripts/bench_predict.py --work /tmp/renal_bench [--device cpu] [--baseline-one-fold]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_SHAPE_ZYX = (150, 512, 512)
BENCH_SPACING_ZYX_MM = (2.5, 0.78, 0.78)


def _run_measured(command: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in GB, exit code) of a child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024**2, os.waitstatus_to_exitcode(status)


def _build_models(work: Path, args) -> dict:
    from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
    from renal_nnunet.pipeline.training import CascadeTrainingConfig, NnunetFolders, nnunet_environment, train_cascade
    from renal_nnunet.pipeline.training import train_stage
    from renal_nnunet.synthetic import make_phantom, write_synthetic_kits
    from renal_nnunet.trainers.commands import plan

    folders = NnunetFolders.under(work / "nnunet")
    geometry = {"shape_zyx": BENCH_SHAPE_ZYX, "spacing_zyx_mm": BENCH_SPACING_ZYX_MM}
    if not (work / "models").exists():
        src = write_synthetic_kits(work / "synthetic", args.cases, seed=11, **geometry)
        convert_kits(src, folders.raw, ConversionConfig(first_id=args.first_id, grid=128))
        train_cascade(folders, work / "models", CascadeTrainingConfig(
            kidney_dataset=args.first_id, mass_dataset=args.first_id + 1, folds=tuple(range(5)),
            trainer="nnUNetTrainerRenalPaper", epochs=1, iterations_per_epoch=args.iterations, classifier_epochs=1,
            classifier_folds=tuple(range(5)), device=args.device), work / "classifier_work")
    native = args.first_id + 3
    with nnunet_environment(folders):
        results = folders.results
        baseline = next(results.glob(f"Dataset{native:03d}_*/nnUNetTrainer__nnUNetPlans__3d_fullres"), None)
        if baseline is None or not all((baseline / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in range(5)):
            plan(native, verify=False)
            for fold in range(5):
                train_stage(native, fold, "nnUNetTrainer", 1, args.iterations, args.device)
    test_dir = work / "test_ct"
    if not test_dir.is_dir():
        import SimpleITK as sitk

        test_dir.mkdir(parents=True)
        phantom = make_phantom(424242, masses_per_kidney=(1, 2), **geometry)
        sitk.WriteImage(phantom.ct, str(test_dir / "bench_0000.nii.gz"), True)
    return {"folders": folders, "native": native, "test_dir": test_dir}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/renal_bench"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2, help="training iterations per fold (timing only)")
    parser.add_argument("--first-id", type=int, default=801)
    parser.add_argument("--baseline-one-fold", action="store_true",
                        help="time the baseline with one fold and no mirroring, and extrapolate")
    args = parser.parse_args()
    built = _build_models(args.work, args)
    folders = built["folders"]
    env = {**os.environ, "nnUNet_raw": str(folders.raw), "nnUNet_preprocessed": str(folders.preprocessed),
           "nnUNet_results": str(folders.results), "nnUNet_n_proc_DA": "1", "nnUNet_def_n_proc": "1"}
    from renal_nnunet.trainers.registration import ext_trainer_search_path

    env["nnUNet_extTrainer"] = ext_trainer_search_path(env.get("nnUNet_extTrainer"))
    folds = ["0"] if args.baseline_one_fold else ["0", "1", "2", "3", "4"]
    bin_dir = Path(sys.executable).parent
    cascade = [str(bin_dir / "renal-nnunet"), "predict", "-i", str(built["test_dir"]), "-o",
               str(args.work / "out_cascade"), "--models", str(args.work / "models"), "--device", args.device,
               "--folds", *folds]
    baseline = [str(bin_dir / "nnUNetv2_predict"), "-i", str(built["test_dir"]), "-o", str(args.work / "out_baseline"),
                "-d", str(built["native"]), "-c", "3d_fullres", "-tr", "nnUNetTrainer", "-f", *folds,
                "-device", args.device, "-npp", "1", "-nps", "1"]
    if args.baseline_one_fold:
        baseline.append("--disable_tta")
    rows = {}
    for name, command in (("cascade", cascade), ("nnunet_3d_fullres", baseline)):
        seconds, peak_gb, code = _run_measured(command, env)
        rows[name] = {"seconds": seconds, "peak_rss_gb": peak_gb, "exit_code": code, "command": " ".join(command)}
        print(f"{name}: {seconds:.1f} s, peak RSS {peak_gb:.2f} GB (exit {code})", flush=True)
    ratio = rows["nnunet_3d_fullres"]["seconds"] / rows["cascade"]["seconds"]
    result = {"ct_shape_zyx": BENCH_SHAPE_ZYX, "spacing_zyx_mm": BENCH_SPACING_ZYX_MM, "folds": folds,
              "device": args.device, "cpu_count": os.cpu_count(), "rows": rows, "speedup": ratio}
    if args.baseline_one_fold:
        result["baseline_5fold_tta_extrapolated_s"] = rows["nnunet_3d_fullres"]["seconds"] * 5 * 8
        print(f"baseline 5 folds with default mirroring, extrapolated: {result['baseline_5fold_tta_extrapolated_s']:.0f} s")
    lesions = list((args.work / "out_cascade").glob("*_lesions.csv"))
    if lesions:
        result["cascade_lesions_classified"] = sum(1 for _ in open(lesions[0])) - 1
    print(f"speedup (baseline / cascade, same folds): {ratio:.1f}x")
    (args.work / "bench_predict.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
