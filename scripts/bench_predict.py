"""Benchmark: `renal-nnunet predict` (cascade, grid 128, 5 folds per stage) against stock
`nnUNetv2_predict` of the 3d_fullres baseline on one synthetic 512x512x150 CT, in one run.

What it does (everything in --work):
1. a small synthetic cohort at the benchmark CT's geometry (512x512 in-plane, 150 slices,
   0.78 x 0.78 x 2.5 mm), converted with grid 128 by the project's converter;
2. stock planning/preprocessing, then 5 folds each of the kidney and mass models, the native
   one-stage baseline's folds (fold 0 only with --baseline-one-fold), trained for --iterations
   iterations, and the classifier for one epoch per fold. The weights are for timing only:
   inference cost does not depend on how long a model was trained (except the number of lesions the
   classifier sees, reported below);
3. a held-out synthetic CT of the same geometry, predicted by both commands as child processes;
   wall time and peak resident memory (os.wait4) of each, and the ratio.

The cascade is timed with 5 folds per stage (the target) and with fold 0 alone. With
--baseline-one-fold the baseline runs fold 0 without mirroring, once as a single model and once as
fold 0 listed twice (twice the network work, the same fixed cost); the difference is the network
time of one fold pass, and the default (5 folds, 8 mirrorings) is estimated as
fixed + 5 x 8 x that. On a CPU the default itself takes hours. Peak memory is the child's maximum
resident set (os.wait4); nnUNetv2_predict's preprocessing/export workers are separate processes.

Usage: python scripts/bench_predict.py --work /tmp/renal_bench [--device cpu] [--baseline-one-fold] [--build-only]
"""

from __future__ import annotations

import argparse
import json
import logging
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
        # every case with masses: each of the 5 classifier folds needs lesions to validate on
        src = write_synthetic_kits(work / "synthetic", args.cases, seed=11, mass_free_every=None, **geometry)
        convert_kits(src, folders.raw, ConversionConfig(first_id=args.first_id, grid=128))
        train_cascade(folders, work / "models", CascadeTrainingConfig(
            kidney_dataset=args.first_id, mass_dataset=args.first_id + 1, folds=tuple(range(5)),
            trainer="nnUNetTrainerRenalPaper", epochs=1, iterations_per_epoch=args.iterations, classifier_epochs=1,
            classifier_folds=tuple(range(5)), device=args.device), work / "classifier_work")
    native = args.first_id + 3
    with nnunet_environment(folders):
        results = folders.results
        baseline = next(results.glob(f"Dataset{native:03d}_*/nnUNetTrainer__nnUNetPlans__3d_fullres"), None)
        native_folds = range(1) if args.baseline_one_fold else range(5)
        if baseline is None or not all((baseline / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in native_folds):
            if baseline is None:
                plan(native, verify=False)
            for fold in native_folds:
                train_stage(native, fold, "nnUNetTrainer", 1, args.iterations, args.device)
    test_dir = work / "test_ct"
    if not test_dir.is_dir():
        import SimpleITK as sitk

        test_dir.mkdir(parents=True)
        phantom = make_phantom(424242, masses_per_kidney=(1, 2), **geometry)
        sitk.WriteImage(phantom.ct, str(test_dir / "bench_0000.nii.gz"), True)
    return {"folders": folders, "native": native, "test_dir": test_dir}


def _lesion_count(out_dir: Path) -> int:
    tables = list(out_dir.glob("*_lesions.csv"))
    return sum(1 for _ in open(tables[0])) - 1 if tables else 0


def _stage_seconds(out_dir: Path) -> dict:
    summary = out_dir / "predict_summary.json"
    return json.loads(summary.read_text())["cases"][0].get("stage_seconds", {}) if summary.is_file() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/renal_bench"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2, help="training iterations per fold (timing only)")
    parser.add_argument("--first-id", type=int, default=801)
    parser.add_argument("--baseline-one-fold", action="store_true",
                        help="time the baseline with one fold and no mirroring, and extrapolate")
    parser.add_argument("--build-only", action="store_true", help="make the data and models, then stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    built = _build_models(args.work, args)
    if args.build_only:
        return 0
    folders = built["folders"]
    env = {**os.environ, "nnUNet_raw": str(folders.raw), "nnUNet_preprocessed": str(folders.preprocessed),
           "nnUNet_results": str(folders.results), "nnUNet_n_proc_DA": "1", "nnUNet_def_n_proc": "1"}
    from renal_nnunet.trainers.registration import ext_trainer_search_path

    env["nnUNet_extTrainer"] = ext_trainer_search_path(env.get("nnUNet_extTrainer"))
    bin_dir = Path(sys.executable).parent

    def cascade(name: str, folds: list[str]) -> list[str]:
        return [str(bin_dir / "renal-nnunet"), "predict", "-i", str(built["test_dir"]), "-o", str(args.work / name),
                "--models", str(args.work / "models"), "--device", args.device, "--folds", *folds]

    def baseline(name: str, folds: list[str], tta: bool) -> list[str]:
        return [str(bin_dir / "nnUNetv2_predict"), "-i", str(built["test_dir"]), "-o", str(args.work / name), "-d",
                str(built["native"]), "-c", "3d_fullres", "-tr", "nnUNetTrainer", "-f", *folds, "-device",
                args.device, "-npp", "1", "-nps", "1", *([] if tta else ["--disable_tta"])]

    runs = {"cascade_5_folds": cascade("cascade_5_folds", ["0", "1", "2", "3", "4"]),
            "cascade_fold_0": cascade("cascade_fold_0", ["0"])}
    if args.baseline_one_fold:
        # Fold 0 listed twice is a two-member ensemble of the same weights: twice the network work
        # with the same fixed cost (reading, resampling, export), which separates the two.
        runs["nnunet_3d_fullres_fold_0_no_tta"] = baseline("nnunet_fold_0", ["0"], tta=False)
        runs["nnunet_3d_fullres_fold_0_twice_no_tta"] = baseline("nnunet_fold_0_twice", ["0", "0"], tta=False)
    else:
        runs["nnunet_3d_fullres_5_folds"] = baseline("nnunet_5_folds", ["0", "1", "2", "3", "4"], tta=True)
    rows = {}
    for name, command in runs.items():
        seconds, peak_gb, code = _run_measured(command, env)
        rows[name] = {"seconds": seconds, "peak_rss_gb": peak_gb, "exit_code": code, "command": " ".join(command)}
        if name.startswith("cascade"):
            out = args.work / name
            rows[name].update(lesions=_lesion_count(out), stage_seconds=_stage_seconds(out))
        print(f"{name}: {seconds:.1f} s, peak RSS {peak_gb:.2f} GB (exit {code}) {rows[name].get('stage_seconds', '')}",
              flush=True)
    result = {"ct_shape_zyx": BENCH_SHAPE_ZYX, "spacing_zyx_mm": BENCH_SPACING_ZYX_MM, "device": args.device,
              "cpu_count": os.cpu_count(), "rows": rows}
    cascade_5 = rows["cascade_5_folds"]["seconds"]
    if args.baseline_one_fold:
        one, twice = (rows[f"nnunet_3d_fullres_fold_0{k}_no_tta"]["seconds"] for k in ("", "_twice"))
        network = max(twice - one, 0.0)
        baseline_default = (one - network) + 5 * 8 * network  # 5 folds x 8 mirrorings of the network work
        result.update(baseline_network_s_per_fold_pass=network, baseline_fixed_s=one - network,
                      baseline_5_folds_tta_estimated_s=baseline_default,
                      speedup_same_folds_no_tta=one / rows["cascade_fold_0"]["seconds"],
                      speedup_5_folds_default=baseline_default / cascade_5)
        print(f"baseline: fixed {one - network:.0f} s + {network:.0f} s per fold and mirroring; 5 folds with "
              f"default mirroring estimated {baseline_default:.0f} s")
        print(f"speedup, fold 0 without mirroring on both sides: {result['speedup_same_folds_no_tta']:.1f}x")
    else:
        result["speedup_5_folds_default"] = rows["nnunet_3d_fullres_5_folds"]["seconds"] / cascade_5
    print(f"speedup, cascade 5 folds vs baseline 5 folds with default mirroring: "
          f"{result['speedup_5_folds_default']:.1f}x (target >= 10x; cascade {cascade_5:.0f} s, target <= 60 s, "
          f"peak {rows['cascade_5_folds']['peak_rss_gb']:.2f} GB, target <= 4 GB)")
    (args.work / "bench_predict.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
