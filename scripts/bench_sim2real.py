"""Benchmark: do models trained only on synthetic CT find the kidneys of real CT?

What it measures, with one models folder (e.g. the demo's ``demo_output/models``):
1. the shared real CT (``../shared/realct/pancreas_ct_cb001``, or ``--real-ct``; no labels): kidney
   volume per side, the share of each side's predicted kidney voxels inside the box drawn by eye
   around that kidney (its README), the masses reported (none is known), and the report PNG to look
   at. Bounds of issue 24: >= 90 % inside the boxes, each kidney 100-250 ml, no mass.
2. a control on painted KiTS23 cases (real KiTS23 kidney and mass shapes, synthetic CT painted
   around them by :func:`renal_nnunet.synthetic.paint_ct`, in-plane subsampled): kidney and mass
   Dice per side and lesion detection against their references, and the kidney Dice a perfect kidney
   U-Net reaches on the models' grid (:mod:`renal_nnunet.inference.grid_ceiling`).

Prints one table and writes ``--json`` (default ``WORK/bench_sim2real.json``) with the CPU's model
and flags beside wall times.

Usage: python scripts/bench_sim2real.py --models demo_output/models --work /tmp/sim2real
       [--real-ct DIR] [--kits23 ../shared/kits23/dataset] [--painted 4] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from renal_nnunet.synthetic.kits_shapes import CONTROL_CASES

REPO = Path(__file__).resolve().parents[1]


def painted_cts(kits23: Path, work: Path, n_cases: int) -> tuple[Path, Path]:
    """The first ``n_cases`` KiTS23 cases painted (in-plane subsampled by 4): folders of their CTs
    (``work/painted_images``) and of their reference labels in the pipeline's convention
    (``work/painted_references``), one ``<case_id>.nii.gz`` each."""
    from renal_nnunet.dataset_conversion.kits import find_kits_cases
    from renal_nnunet.io import read_image, write_image
    from renal_nnunet.pipeline.demo import reference_seg
    from renal_nnunet.synthetic import write_painted_kits

    case_ids = sorted(p.name for p in kits23.glob("case_*"))[:n_cases]
    src = write_painted_kits(kits23, work / "painted", case_ids=case_ids, seed=0, inplane_downsample=4)
    images, references = work / "painted_images", work / "painted_references"
    for case in find_kits_cases(src):
        write_image(read_image(case.image_path), images / f"{case.case_id}.nii.gz")
        write_image(reference_seg(case), references / f"{case.case_id}.nii.gz")
    return images, references


def _painted_control(kits23: Path, work: Path, models: Path, n_cases: int) -> dict:
    """Predict ``n_cases`` painted KiTS23 cases and score them; returns the summary figures, with the
    kidney Dice a perfect kidney U-Net reaches on the models' grid (``kidney_ceiling_{side}``)."""
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders
    from renal_nnunet.evaluation.report import summary_value
    from renal_nnunet.inference.grid_ceiling import kidney_dice_ceiling
    from renal_nnunet.pipeline.models import load_models
    from renal_nnunet.pipeline.predict import PredictConfig, predict

    images, references = painted_cts(kits23, work, n_cases)
    case_ids = sorted(p.name.removesuffix(".nii.gz") for p in images.glob("*.nii.gz"))
    predict(images, work / "painted_predictions", models, PredictConfig())
    summary = evaluate_folders(work / "painted_predictions", references, work / "painted_evaluation",
                               EvaluationConfig(figures=False)).summary
    ceiling = kidney_dice_ceiling(references, images, load_models(models).grid, work / "painted_grid_ceiling")
    return {
        "cases": case_ids,
        **{f"kidney_ceiling_{side}": dice for side, dice in ceiling.items()},
        **{f"{what}_dice_{side}": summary_value(summary, "segmentation", f"{what}_{side}", "dice")
           for what in ("kidney", "mass") for side in ("right", "left")},
        **{f"lesion_f1_{side}": summary_value(summary, "detection", side, "f1") for side in ("right", "left")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="models folder (e.g. demo_output/models)")
    parser.add_argument("--work", type=Path, required=True, help="working folder (created)")
    parser.add_argument("--real-ct", type=Path, default=None, help="the shared real CT series folder "
                        "(default: $RENAL_REALCT_DIR/pancreas_ct_cb001 or ../shared/realct/pancreas_ct_cb001)")
    parser.add_argument("--kits23", type=Path, default=REPO.parent / "shared" / "kits23" / "dataset",
                        help="KiTS23 dataset/ folder for the painted control")
    parser.add_argument("--painted", type=int, default=CONTROL_CASES,
                        help=f"painted KiTS23 control cases (0: none; at most {CONTROL_CASES}, the cases the "
                             "demo's generator takes no shape from)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not 0 <= args.painted <= CONTROL_CASES:
        parser.error(f"--painted must lie in 0..{CONTROL_CASES}: later cases may be kidney shapes the models trained on")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from renal_nnunet.evaluation.transfer import real_ct_findings, shared_real_ct
    from renal_nnunet.io import read_image
    from renal_nnunet.pipeline.predict import PredictConfig, predict
    from renal_nnunet.runtime.cpu import cpu_description

    real_ct = args.real_ct or shared_real_ct(REPO)
    if real_ct is None:
        parser.error("no real CT: pass --real-ct or set RENAL_REALCT_DIR")
    args.work.mkdir(parents=True, exist_ok=True)
    record = {"cpu": cpu_description(), "models": str(args.models), "real_ct": str(real_ct)}
    started = time.perf_counter()
    (result,) = predict(real_ct, args.work / "real_ct", args.models, PredictConfig())
    findings = real_ct_findings(read_image(result.files["seg"]))
    record["real_ct_seconds"] = round(time.perf_counter() - started, 1)
    record["real"] = {"kidney_ml": findings.kidney_ml, "inside_box": findings.inside_box,
                      "inside_box_all": findings.inside_box_all, "masses": findings.masses,
                      "meets_bounds": findings.meets_bounds(), "report": str(result.files.get("report"))}
    if args.painted:
        started = time.perf_counter()
        record["painted_kits"] = _painted_control(args.kits23, args.work, args.models, args.painted)
        record["painted_seconds"] = round(time.perf_counter() - started, 1)
    out = args.json or args.work / "bench_sim2real.json"
    out.write_text(json.dumps(record, indent=2, default=float))

    print(f"CPU: {record['cpu']['model']} (flags: {' '.join(record['cpu']['flags'])})")
    print(f"real CT {real_ct}:")
    for row in findings.rows():
        print(f"  {row['side']:5s} kidney {row['kidney_ml']:7.1f} ml, {row['inside_box']:.1%} inside its box")
    print(f"  all kidney voxels inside the boxes: {findings.inside_box_all:.1%}; masses: {findings.masses_text()}; "
          f"bounds met: {findings.meets_bounds()}")
    print(f"  report: {record['real']['report']}")
    if args.painted:
        control = record["painted_kits"]
        print(f"painted KiTS23 control ({len(control['cases'])} cases): kidney Dice R/L "
              f"{control['kidney_dice_right']:.3f}/{control['kidney_dice_left']:.3f} (a perfect kidney U-Net on "
              f"the grid: {control['kidney_ceiling_right']:.3f}/{control['kidney_ceiling_left']:.3f}), mass Dice R/L "
              f"{control['mass_dice_right']:.3f}/{control['mass_dice_left']:.3f}, lesion F1 R/L "
              f"{control['lesion_f1_right']:.3f}/{control['lesion_f1_left']:.3f}")
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
