"""Agreement of OpenVINO's reduced precisions with fp32 on whole CTs, as ``predict`` runs them.

``compile-models --precision int8`` measures each stage on its own held-out grid images and lesion
crops; this measures what a user gets: the whole cascade of ``predict`` at fp32 and at each reduced
precision (and ``auto``) on the same CTs, every result scored against fp32's by ``evaluate``
(pipeline labels, fp32's lesion tables as the reference classes):

- kidney Dice per side and mass Dice, per case (worst and mean over the cases where fp32 or the
  reduced precision labelled something);
- masses: fp32's masses found again (TP), missed (FN) and added (FP), by connected component, and
  of those found again the ones joined with another or split in two (not the same masses);
- lesion classes: masses with fp32's class, of the masses found again;
- Grad-CAM: distance between the peaks of fp32's and the reduced precision's map of each mass
  found again (mm, CT space; the maps are linked by their lesion's centroid).

and what the agreement costs in speed: one pass of each U-Net stage's first fold at INT8 against
fp32 (median of 100 passes of each compiled network, run in turn, on a random grid volume) and how
many of its operations stayed INT8 after accuracy control.

Typical use, on the demo's models, its held-out CTs and painted KiTS23 cases::

    python scripts/bench_precision.py --models demo_output/models \\
        --calibration demo_output/nnunet/nnUNet_raw --ct demo_output/test_images --painted 3 \\
        --work /tmp/precision --json /tmp/precision.json

Without ``--calibration`` the models folder must already hold the stages' measurements
(``compile-models --precision int8``). Every figure comes with the CPU's model and flags.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _cam_peak_mm(path: Path) -> np.ndarray:
    """Patient coordinates (mm, ITK's LPS) of a Grad-CAM map's maximum."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    index_zyx = np.unravel_index(int(np.argmax(sitk.GetArrayViewFromImage(image))), image.GetSize()[::-1])
    return np.array(image.TransformIndexToPhysicalPoint([int(i) for i in index_zyx[::-1]]))


def cam_peak_distances(reference_dir: Path, candidate_dir: Path, case_ids: list[str]) -> list[float]:
    """mm between the Grad-CAM peaks of each reference mass and the candidate's mass at the same
    place (nearest centroid within evaluation's link tolerance; masses without a partner skipped)."""
    from renal_nnunet.evaluation.evaluate import CENTROID_LINK_TOLERANCE_MM

    columns = ["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]
    distances = []
    for case in case_ids:
        tables = [d / f"{case}_lesions.csv" for d in (reference_dir, candidate_dir)]
        if not all(t.is_file() for t in tables):
            continue
        reference, candidate = (pd.read_csv(t).dropna(subset=["cam_file"]) for t in tables)
        for _, row in reference.iterrows():
            if candidate.empty:
                break
            gaps = np.linalg.norm(candidate[columns].to_numpy(float) - row[columns].to_numpy(float), axis=1)
            if gaps.min() <= CENTROID_LINK_TOLERANCE_MM:
                partner = candidate.iloc[int(np.argmin(gaps))]
                distances.append(float(np.linalg.norm(_cam_peak_mm(reference_dir / row.cam_file)
                                                      - _cam_peak_mm(candidate_dir / partner.cam_file))))
    return distances


def agreement_with_fp32(fp32_dir: Path, candidate_dir: Path, out_dir: Path) -> dict:
    """The figures of the module docstring for one precision's predictions of the same CTs."""
    from renal_nnunet.evaluation.detection import joined_and_split
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders

    result = evaluate_folders(candidate_dir, fp32_dir, out_dir,
                              EvaluationConfig(ref_format="pipeline", lesions_ref=fp32_dir, figures=False))
    per_case, lesions = result.per_case, result.per_lesion
    figures = {"cases": int(per_case.case_id.nunique())}
    for structure in ("kidney_right", "kidney_left", "mass"):
        rows = per_case[(per_case.structure == structure) & (per_case["empty"] != "both")]
        figures[f"{structure}_cases"] = len(rows)
        figures[f"{structure}_dice_min"] = float(rows.dice.min()) if len(rows) else None
        figures[f"{structure}_dice_mean"] = float(rows.dice.mean()) if len(rows) else None
    found = lesions[lesions.status == "TP"]
    figures.update(masses_fp32=int((lesions.status != "FP").sum()), masses_found=len(found),
                   masses_missed=int((lesions.status == "FN").sum()), masses_extra=int((lesions.status == "FP").sum()),
                   **{f"masses_{kind}": count for kind, count in joined_and_split(lesions).items()})
    classified = found.dropna(subset=["ref_class", "pred_class"])
    figures.update(classes_compared=len(classified),
                   classes_equal=int((classified.ref_class == classified.pred_class).sum()))
    distances = cam_peak_distances(fp32_dir, candidate_dir, sorted(per_case.case_id.unique()))
    figures.update(cam_peaks_compared=len(distances), cam_peak_mm_max=max(distances, default=None),
                   cam_peak_mm_mean=float(np.mean(distances)) if distances else None)
    if len(result.errors):
        figures["errors"] = result.errors.to_dict("records")
    return figures


def unet_pass_ms(models: Path, repeats: int = 100) -> dict:
    """Per U-Net stage: one pass of fold 0's fp32 and INT8 network (ms, median of ``repeats``, the
    two compiled once and run in turn so that the machine's drift falls on both; random input at
    the stage's grid), their ratio and the operations still INT8."""
    import time

    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.pipeline.models import load_models
    from renal_nnunet.runtime.backends import Runtime
    from renal_nnunet.runtime.openvino import compile_on_cpu, infer, quantised_operations

    manifest = load_models(models)
    volume = np.random.default_rng(0).random((1, 1, *[manifest.grid] * 3), np.float32)
    timings = {}
    for stage in ("kidney", "mass"):
        folder = models / getattr(manifest, stage).path
        ensemble = FoldEnsemble(folder, getattr(manifest, stage).folds[:1], Runtime("openvino", "cpu", "fp32"))
        if ensemble.agreement is None or "int8" not in ensemble.agreement.checks:
            continue
        networks = {p: ensemble.fold_model(ensemble.checkpoints[0], p) for p in ("fp32", "int8")}
        compiled = {p: compile_on_cpu(model, p) for p, model in networks.items()}
        times = {p: [] for p in compiled}
        for _ in range(repeats + 1):
            for precision, network in compiled.items():
                started = time.perf_counter()
                infer(network, volume)
                times[precision].append(time.perf_counter() - started)
        timings[stage] = {f"{p}_pass_ms": 1000 * float(np.median(t[1:])) for p, t in times.items()}
        timings[stage].update(int8_vs_fp32=timings[stage]["int8_pass_ms"] / timings[stage]["fp32_pass_ms"],
                              quantised_operations=quantised_operations(networks["int8"]))
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, default=None,
                        help="nnU-Net raw folder the models were trained from: quantise and measure first")
    parser.add_argument("--ct", type=Path, nargs="+", action="extend", default=[],
                        help="folders of CTs (NIfTI) or DICOM series to predict (repeatable)")
    parser.add_argument("--kits23", type=Path, default=REPO.parent / "shared" / "kits23" / "dataset")
    parser.add_argument("--painted", type=int, default=0, help="painted KiTS23 cases to add (0: none)")
    parser.add_argument("--precisions", nargs="+", default=["int8", "auto"])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from bench_sim2real import painted_cts  # this script's folder is on sys.path

    from renal_nnunet.pipeline.compile_models import compile_models
    from renal_nnunet.pipeline.predict import PredictConfig, predict
    from renal_nnunet.runtime.cpu import cpu_description

    if args.calibration is not None:
        compile_models(args.models, precision="auto", calibration=args.calibration)
    folders = {folder.name: folder for folder in args.ct}
    if args.painted:
        folders["painted_kits23"], _ = painted_cts(args.kits23, args.work, args.painted)
    record = {"cpu": cpu_description(), "models": str(args.models), "sets": {}}
    for name, folder in folders.items():
        outputs = {}
        for precision in ("fp32", *args.precisions):
            out = args.work / name / precision
            shutil.rmtree(out, ignore_errors=True)
            predict(folder, out, args.models, PredictConfig(backend="openvino", precision=precision))
            outputs[precision] = out
            chosen = json.loads((out / "predict_summary.json").read_text())["precision"]
            record["sets"].setdefault(name, {})[precision] = {"stage_precisions": chosen}
        for precision in args.precisions:
            figures = agreement_with_fp32(outputs["fp32"], outputs[precision], args.work / name / f"{precision}_vs_fp32")
            record["sets"][name][precision].update(figures)
            print(f"{name} {precision}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                     for k, v in figures.items() if k != "errors"))
    record["unet_pass_ms"] = unet_pass_ms(args.models)
    for stage, timing in record["unet_pass_ms"].items():
        print(f"{stage} U-Net, one pass of fold 0: INT8 {timing['int8_pass_ms']:.1f} ms, fp32 "
              f"{timing['fp32_pass_ms']:.1f} ms ({timing['int8_vs_fp32']:.2f}x), "
              f"{timing['quantised_operations']} operation(s) still INT8")
    print(f"CPU: {record['cpu']['model']}, flags {' '.join(record['cpu']['flags'])}")
    text = json.dumps(record, indent=2, default=str)
    (args.work / "bench_precision.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
