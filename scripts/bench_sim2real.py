"""Benchmark: do models trained only on synthetic CT find the kidneys of real CT?

What it measures, with one models folder (e.g. the demo's ``demo_output/models``):
1. the shared real CT (``../shared/realct/pancreas_ct_cb001``, or ``--real-ct``; no labels): kidney
   volume per side, the share of each side's predicted kidney voxels inside the box drawn by eye
   around that kidney (its README), the masses reported, and the report PNG to look at. The scan's
   README knows no renal mass, but the right kidney's upper pole holds a simple cyst (water density,
   about 87 ml, a claw of parenchyma around it): each mass is marked when it lies on that cyst's
   outline (:func:`renal_nnunet.evaluation.transfer.simple_cyst_outline`), the masses on it are
   scored by Dice against the outline, and ``WORK/real_ct_cyst.png`` shows the cyst, its outline and
   the model's labels in three planes. Bounds of issue 24: >= 90 % inside the boxes, each kidney
   100-250 ml, no mass (read here: no mass but that cyst).
2. a control on painted KiTS23 cases (real KiTS23 kidney and mass shapes, synthetic CT painted
   around them by :func:`renal_nnunet.synthetic.paint_ct`, in-plane subsampled): kidney and mass
   Dice per side and lesion detection against their references, and the kidney Dice a perfect kidney
   U-Net reaches on the models' grid (:mod:`renal_nnunet.inference.grid_ceiling`).
3. with ``--held-out N``: the same scores on N held-out torsos of the demo's default generator
   (seed 1, so the demo's own 4 held-out torsos are the first 4; real KiTS23 shapes where found),
   the synthetic side of the comparison, e.g. for models of an ablation (``renal-nnunet demo
   --phase nephrographic``) scored on the same torsos as the default's. A demo run with ``seed=1``
   trained on these very torsos: do not score its models here.

Prints one table and writes ``--json`` (default ``WORK/bench_sim2real.json``) with the CPU's model
and flags beside wall times.

Usage: python scripts/bench_sim2real.py --models demo_output/models --work /tmp/sim2real
       [--real-ct DIR] [--kits23 ../shared/kits23/dataset] [--painted 4] [--held-out 12] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
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


def _scored(images: Path, references: Path, models: Path, work: Path, name: str) -> dict:
    """Predict the CTs in ``images`` (into ``work/<name>_predictions``) and score them against
    ``references``; returns the summary figures, with the kidney Dice a perfect kidney U-Net reaches on
    the models' grid (``kidney_ceiling_{side}``)."""
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders
    from renal_nnunet.evaluation.report import summary_value
    from renal_nnunet.inference.grid_ceiling import kidney_dice_ceiling
    from renal_nnunet.pipeline.models import load_models
    from renal_nnunet.pipeline.predict import PredictConfig, predict

    predict(images, work / f"{name}_predictions", models, PredictConfig())
    summary = evaluate_folders(work / f"{name}_predictions", references, work / f"{name}_evaluation",
                               EvaluationConfig(figures=False)).summary
    ceiling = kidney_dice_ceiling(references, images, load_models(models).grid, work / f"{name}_grid_ceiling")
    return {
        "cases": sorted(p.name.removesuffix(".nii.gz") for p in images.glob("*.nii.gz")),
        **{f"kidney_ceiling_{side}": dice for side, dice in ceiling.items()},
        **{f"{what}_dice_{side}": summary_value(summary, "segmentation", f"{what}_{side}", "dice")
           for what in ("kidney", "mass") for side in ("right", "left")},
        **{f"lesion_f1_{side}": summary_value(summary, "detection", side, "f1") for side in ("right", "left")},
        "accuracy": summary_value(summary, "classification", "all", "accuracy"),
    }


def _held_out_torsos(work: Path, n_cases: int) -> tuple[Path, Path]:
    """The demo's default held-out cohort with ``n_cases`` cases (seed 1: the demo's own 4 are its
    first 4; real KiTS23 shapes where found): folders of their CTs and references."""
    from renal_nnunet.pipeline.demo import DemoConfig, demo_kits_shapes, write_held_out_cohort

    config = DemoConfig(test_cases=n_cases, real_ct=None)
    return write_held_out_cohort(config, work / "held_out", demo_kits_shapes(config))


def _table_line(title: str, scores: dict) -> str:
    return (f"{title} ({len(scores['cases'])} cases): kidney Dice R/L {scores['kidney_dice_right']:.3f}/"
            f"{scores['kidney_dice_left']:.3f} (a perfect kidney U-Net on the grid: {scores['kidney_ceiling_right']:.3f}/"
            f"{scores['kidney_ceiling_left']:.3f}), mass Dice R/L {scores['mass_dice_right']:.3f}/"
            f"{scores['mass_dice_left']:.3f}, lesion F1 R/L {scores['lesion_f1_right']:.3f}/{scores['lesion_f1_left']:.3f}, "
            f"classification accuracy {scores['accuracy']:.3f}")


def cyst_figure(series: Path, seg_path: Path, out: Path) -> Path:
    """Axial, coronal and sagittal views through the real CT's cyst seed (window -120..280 HU): the
    cyst's water-density outline in yellow, the model's kidneys in green and masses in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk

    from renal_nnunet.evaluation.transfer import REAL_CT_CYST_SEED, simple_cyst_outline
    from renal_nnunet.io import read_image, read_series_or_image

    ct = read_series_or_image(series)
    hu = sitk.GetArrayFromImage(ct)
    cyst = sitk.GetArrayFromImage(simple_cyst_outline(ct))
    labels = sitk.GetArrayFromImage(read_image(seg_path))
    x, y, z = REAL_CT_CYST_SEED
    dx, dy, dz = ct.GetSpacing()
    half, head_up = 90, np.s_[z + 30:z - 30:-1]  # ~19 cm in-plane, 18 cm along the body
    views = [("axial", np.s_[z, y - half:y + half, x - half:x + half], dy / dx),
             ("coronal (head up)", np.s_[head_up, y, x - half:x + half], dz / dx),
             ("sagittal (head up)", np.s_[head_up, y - half:y + half, x], dz / dy)]
    figure, axes = plt.subplots(1, 3, figsize=(15, 5.5))
    for axis, (title, view, aspect) in zip(axes, views):
        axis.imshow(hu[view], cmap="gray", vmin=-120, vmax=280, aspect=aspect)
        axis.contour(cyst[view], levels=[0.5], colors="yellow", linewidths=1)
        axis.contour(np.isin(labels[view], (1, 2)), levels=[0.5], colors="lime", linewidths=1)
        axis.contour(labels[view] > 2, levels=[0.5], colors="red", linewidths=1)
        axis.set_title(title)
        axis.axis("off")
    figure.suptitle("Real CT: the simple cyst at the right kidney's upper pole (yellow: water-density outline; "
                    "green: model's kidney; red: model's masses)")
    figure.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return out


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
    parser.add_argument("--held-out", type=int, default=0,
                        help="also score this many held-out torsos of the demo's default generator (seed 1, as "
                             "the demo's held-out cohort; 0: none; models of a demo run with seed 1 trained on them)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not 0 <= args.painted <= CONTROL_CASES:
        parser.error(f"--painted must lie in 0..{CONTROL_CASES}: later cases may be kidney shapes the models trained on")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from renal_nnunet.evaluation.transfer import shared_real_ct, shared_real_ct_findings
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
    findings = shared_real_ct_findings(real_ct, read_image(result.files["seg"]))
    record["real_ct_seconds"] = round(time.perf_counter() - started, 1)
    record["real"] = {"kidney_ml": findings.kidney_ml, "inside_box": findings.inside_box,
                      "inside_box_all": findings.inside_box_all,
                      "masses": [dataclasses.asdict(mass) for mass in findings.masses],
                      "cyst_ml": findings.cyst_ml, "cyst_dice": findings.cyst_dice,
                      "meets_bounds": findings.meets_bounds(), "report": str(result.files.get("report")),
                      "cyst_figure": str(cyst_figure(real_ct, result.files["seg"], args.work / "real_ct_cyst.png"))}
    if args.painted:
        started = time.perf_counter()
        images, references = painted_cts(args.kits23, args.work, args.painted)
        record["painted_kits"] = _scored(images, references, args.models, args.work, "painted")
        record["painted_seconds"] = round(time.perf_counter() - started, 1)
    if args.held_out:
        started = time.perf_counter()
        images, references = _held_out_torsos(args.work, args.held_out)
        record["held_out"] = _scored(images, references, args.models, args.work, "held_out")
        record["held_out_seconds"] = round(time.perf_counter() - started, 1)
    out = args.json or args.work / "bench_sim2real.json"
    out.write_text(json.dumps(record, indent=2, default=float))

    print(f"CPU: {record['cpu']['model']} (flags: {' '.join(record['cpu']['flags'])})")
    print(f"real CT {real_ct}:")
    for row in findings.rows():
        print(f"  {row['side']:5s} kidney {row['kidney_ml']:7.1f} ml, {row['inside_box']:.1%} inside its box")
    print(f"  all kidney voxels inside the boxes: {findings.inside_box_all:.1%}; masses: {findings.masses_text()}")
    print(f"  the simple cyst at the right upper pole: {findings.cyst_text()}; bounds met: {findings.meets_bounds()}")
    print(f"  report: {record['real']['report']}; the cyst: {record['real']['cyst_figure']}")
    if args.painted:
        print(_table_line("painted KiTS23 control", record["painted_kits"]))
    if args.held_out:
        print(_table_line("held-out synthetic torsos of the demo's generator (seed 1; kidney-free ones left out "
                          "of the kidney means)", record["held_out"]))
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
