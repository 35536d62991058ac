"""Benchmark: peak resident memory of conversion and prediction on a long CT (issue 12.5).

The CT is KiTS23 case_00165 painted at its real size (512 x 512 x 734 slices, 0.97 x 0.97 x 1 mm;
labels from ../shared/kits23, CT intensities synthetic). Each command runs in a child process and
its peak RSS is its own high-water mark (``renal_nnunet.runtime.measure``); the reference is the
budget each must stay under:

    convert (one worker, grid 128)          <= 3 GB per worker
    predict (whole cascade, one case)       <= 4 GB

Prediction needs a models folder (``--models``, any grid; memory scales with the CT, not the grid).
Without one, a tiny demo (synthetic, a few CPU minutes) is trained into WORK/demo first; its
weights are for memory only.

Usage: python scripts/bench_memory.py --work /tmp/renal_memory [--models MODELS] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

LONG_CASE = "case_00165"
BUDGET_GB = {"convert": 3.0, "predict": 4.0}


def measure(command: list[str], log_path: Path) -> dict:
    """Wall seconds, peak RSS (GB) and exit code of a child process; its output goes to ``log_path``."""
    from renal_nnunet.runtime.measure import run_measured

    child = run_measured(command, log_path)
    return {"wall_s": round(child.wall_s, 1), "peak_rss_gb": round(child.peak_rss_gb, 3),
            "exit_code": child.exit_code, "log": str(log_path)}


def long_ct(work: Path, kits_dir: Path) -> Path:
    """The painted long case's KiTS23 folder (painted once, then reused)."""
    from renal_nnunet.synthetic import write_painted_kits

    dataset = work / "painted" / "dataset"
    if not (dataset / LONG_CASE / "imaging.nii.gz").is_file():
        write_painted_kits(kits_dir, work / "painted", case_ids=[LONG_CASE])
    return dataset


def tiny_models(work: Path) -> Path:
    """A models folder from a tiny synthetic demo (trained once, then reused)."""
    from renal_nnunet.pipeline.demo import DemoConfig, run_demo

    models = work / "demo" / "models"
    if not (models / "manifest.json").is_file():
        run_demo(work / "demo", DemoConfig(cases=5, test_cases=1, minutes=2.0, shape_zyx=(26, 27, 36),
                                           spacing_zyx_mm=(10.0, 10.0, 10.0)))
    return models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/renal_memory"))
    parser.add_argument("--kits", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "kits23" / "dataset",
                        help="KiTS23 dataset/ folder holding case_00165 (default ../shared/kits23/dataset)")
    parser.add_argument("--models", type=Path, default=None, help="models folder for predict (default: a tiny demo's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    dataset = long_ct(args.work, args.kits)
    models = args.models or tiny_models(args.work)
    cli = str(Path(sys.executable).parent / "renal-nnunet")
    commands = {
        "convert": [cli, "convert", "kits", str(dataset), "-o", str(args.work / "raw"), "--grid", "128",
                    "--workers", "1"],
        "predict": [cli, "predict", "-i", str(dataset / LONG_CASE / "imaging.nii.gz"), "-o",
                    str(args.work / "predictions"), "-m", str(models), "--device", "cpu"],
    }
    shutil.rmtree(args.work / "raw", ignore_errors=True)  # conversion skips unchanged cases
    results = {}
    for name, command in commands.items():
        results[name] = measure(command, args.work / f"{name}.log")
        row = results[name]
        row["budget_gb"] = BUDGET_GB[name]
        row["ratio_to_budget"] = round(row["peak_rss_gb"] / BUDGET_GB[name], 3)
        print(f"{name:8s} peak RSS {row['peak_rss_gb']:.2f} GB = {row['ratio_to_budget']:.2f} x its "
              f"{BUDGET_GB[name]:g} GB budget, {row['wall_s']:.0f} s, exit {row['exit_code']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"ct": LONG_CASE, "shape_zyx": [734, 512, 512], "runs": results}, indent=2))
    return 0 if all(r["exit_code"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
