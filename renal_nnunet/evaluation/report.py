"""Write the evaluation tables, the Markdown summary laid out like the paper's Tables 1-5, and
figures like its Figs 7-10 (matplotlib, Agg backend).

Segmentation means are over the cases where the structure is present in the reference or the
prediction (a side without any mass in either would otherwise add a perfect Dice of 1); they skip
NaN values, and every mean states how many values it is over (``n``). ``per_case.csv`` keeps every
row; see :data:`renal_nnunet.evaluation.surface.EMPTY_POLICY` for which values are NaN.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.evaluation.agreement import nephrometry_agreement
from renal_nnunet.evaluation.classification import (
    UNKNOWN_CLASS,
    sequential_protocol_metrics,
    size_groups,
    stratified_classification_metrics,
)
from renal_nnunet.evaluation.detection import detection_scores
from renal_nnunet.evaluation.surface import EMPTY_POLICY
from renal_nnunet.io import atomic_path

__all__ = ["SEGMENTATION_METRICS", "summarise", "summary_value", "write_report"]

SEGMENTATION_METRICS: tuple[str, ...] = ("dice", "hd_mm", "hd95_mm", "hd95_max_mm", "assd_mm", "surface_dice")


def summary_value(summary: pd.DataFrame, section: str, group: str, metric: str) -> float:
    """One value of an evaluation summary table (columns section, group, metric, value); NaN if
    the summary has no such row (e.g. no lesion of that side), the first row if several match."""
    rows = summary[(summary.section == section) & (summary.group == group) & (summary.metric == metric)]
    return float(rows.value.iloc[0]) if len(rows) else np.nan


def _row(section: str, group: str, metric: str, value, n: int | None = None) -> dict:
    return {"section": section, "group": group, "metric": metric,
            "value": float(value) if value is not None else math.nan, "n": n}


def _classification_rows(section: str, group: str, metrics: dict) -> list[dict]:
    rows = [_row(section, group, "accuracy", metrics["accuracy"], metrics["n"])]
    for cls, values in metrics["per_class"].items():
        rows += [_row(section, f"{group} {cls}", m, values[m], values["support"]) for m in ("precision", "recall", "f1", "auc")]
    return rows


def summarise(per_case: pd.DataFrame, per_lesion: pd.DataFrame, kits: pd.DataFrame, errors: pd.DataFrame,
              size_threshold_mm: float) -> tuple[pd.DataFrame, dict]:
    """Long-form summary (``section, group, metric, value, n``) and the classification results."""
    rows = []
    for structure, table in per_case.groupby("structure", sort=False) if len(per_case) else []:
        for metric in SEGMENTATION_METRICS:
            values = table.loc[table["empty"] != "both", metric].dropna()
            rows.append(_row("segmentation", structure, metric, values.mean() if len(values) else math.nan, len(values)))
        for empty in ("both", "pred", "ref"):
            rows.append(_row("segmentation", structure, f"cases_empty_{empty}", (table["empty"] == empty).sum(), len(table)))
    for side in ("right", "left", "all"):
        lesions = per_lesion if side == "all" or not len(per_lesion) else per_lesion[per_lesion["side"] == side]
        scores = detection_scores(lesions) if len(lesions) else detection_scores(pd.DataFrame({"status": []}))
        rows += [_row("detection", side, m, v) for m, v in scores.items()]
    classification = {}
    if len(per_lesion):
        classification["stratified"] = stratified_classification_metrics(per_lesion, size_threshold_mm)
        classification["sequential"] = sequential_protocol_metrics(per_lesion, size_threshold_mm)
        for group, metrics in classification["stratified"].items():
            rows += _classification_rows("classification", group, metrics)
        rows += _classification_rows("sequential", size_groups(size_threshold_mm)[1], classification["sequential"])
    for hec, table in kits.groupby("hec", sort=False) if len(kits) else []:
        rows += [_row("kits", hec, m, table[m].mean(), len(table)) for m in ("dice", "surface_dice")]
    rows.append(_row("errors", "cases", "count", len(errors)))
    summary = pd.DataFrame(rows, columns=["section", "group", "metric", "value", "n"]).astype({"n": "Int64"})
    return summary, classification


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


MISSING_PREDICTION = "no prediction for this reference (missing case): scored as an empty prediction"
"""The error of a reference without a prediction (scored as empty, so every mean counts it)."""


def _markdown(summary: pd.DataFrame, per_case: pd.DataFrame, classification: dict, errors: pd.DataFrame,
              threshold_mm: float, agreement: pd.DataFrame) -> str:
    missing = errors[errors.problem == MISSING_PREDICTION].case_id.tolist() if len(errors) else []
    lines = ["# Evaluation summary", ""]
    if missing:
        lines += [f"**{len(missing)} reference(s) had no prediction and are scored as empty predictions "
                  f"(Dice 0, every lesion missed): {', '.join(missing)}.**", ""]
    lines += [f"Empty masks: {EMPTY_POLICY}. HD95 is MedPy's pooled 95th percentile "
             "(hd95_max_mm: MONAI's max of the directed percentiles); ASSD is MedPy 0.5's pooled mean. "
             "Means skip undefined values; n = values averaged.", ""]
    lines += ["## Table 1. Segmentation (mean ± SD over cases with the structure, n)", "",
              "| structure | Dice | HD (mm) | HD95 (mm) | ASSD (mm) | n Dice | n HD |", "|---|---|---|---|---|---|---|"]
    for structure, table in per_case.groupby("structure", sort=False) if len(per_case) else []:
        table = table[table["empty"] != "both"]
        cells = [f"{_fmt(table[m].mean())} ± {_fmt(table[m].std())}" for m in ("dice", "hd_mm", "hd95_mm", "assd_mm")]
        lines.append(f"| {structure} | " + " | ".join(cells) + f" | {table['dice'].notna().sum()} | {table['hd_mm'].notna().sum()} |")
    lines += ["", "## Table 2. Lesion detection (connected components)", "",
              "| side | TP | FP | FN | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    detection = summary[summary.section == "detection"].pivot(index="group", columns="metric", values="value")
    for side in ("right", "left", "all"):
        d = detection.loc[side]
        lines.append(f"| {side} | {int(d.tp)} | {int(d.fp)} | {int(d.fn)} | {_fmt(d.precision)} | {_fmt(d.recall)} | {_fmt(d.f1)} |")
    if classification:
        small, large = size_groups(threshold_mm)
        lines += ["", "## Table 3. Confusion matrix of detected lesions (rows reference, columns predicted)", ""]
        for group in (small, large):
            confusion = classification["stratified"][group]["confusion"]
            lines += [f"**{group}** (n={classification['stratified'][group]['n']})", "",
                      "| reference | " + " | ".join(f"p{c}" for c in confusion.columns) + " |",
                      "|---" * (len(confusion.columns) + 1) + "|"]
            lines += [f"| {c} | " + " | ".join(str(int(v)) for v in confusion.loc[c]) + " |" for c in confusion.index]
            lines.append("")
        lines += ["## Table 4. Classification by reference average diameter", "",
                  "| diameter | class | precision | recall | F1 | AUC | n |", "|---|---|---|---|---|---|---|"]
        for group in ("all", small, large):
            metrics = classification["stratified"][group]
            for cls, v in metrics["per_class"].items():
                lines.append(f"| {group} | {cls} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | {_fmt(v['auc'])} | {v['support']} |")
            lines.append(f"| {group} | accuracy | {_fmt(metrics['accuracy'])} | | | | {metrics['n']} |")
        lines += _unclassified_note(classification["stratified"], small, threshold_mm)
        sequential = classification["sequential"]
        lines += ["", f"## Table 5. Sequential protocol: TP components with predicted diameter {large}", "",
                  "| class | precision | recall | F1 | AUC | n |", "|---|---|---|---|---|---|"]
        lines += [f"| {c} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | {_fmt(v['auc'])} | {v['support']} |"
                  for c, v in sequential["per_class"].items()]
        lines.append(f"| accuracy | {_fmt(sequential['accuracy'])} | | | | {sequential['n']} |")
    kits = summary[summary.section == "kits"]
    if len(kits):
        lines += ["", "## KiTS hierarchical evaluation classes", "", "| HEC | Dice | surface Dice | n |", "|---|---|---|---|"]
        table = kits.pivot(index="group", columns="metric", values="value")
        counts = kits.groupby("group")["n"].first()
        lines += [f"| {hec} | {_fmt(table.loc[hec, 'dice'], 4)} | {_fmt(table.loc[hec, 'surface_dice'], 4)} | {counts[hec]} |"
                  for hec in kits.group.unique()]
    lines += _agreement_lines(agreement)
    lines += ["", f"## Errors ({len(errors)})", ""]
    lines += [f"- {row.case_id}: {row.problem}" for row in errors.itertuples()] or ["none"]
    return "\n".join(lines) + "\n"


def _agreement_lines(agreement: pd.DataFrame) -> list[str]:
    """The nephrometry agreement section of ``summary.md`` (none without scores on both sides)."""
    if agreement.empty:
        return []
    lines = ["", "## Nephrometry: predicted vs reference, true-positive masses", "",
             "Exact match, Cohen's kappa (quadratic-weighted; unweighted for A) and ICC(2,1) of the composites "
             "(n: masses scored on both sides).", "",
             "| item | n | exact match | kappa | ICC(2,1) |", "|---|---|---|---|---|"]
    lines += [f"| {r.item} | {r.n} | {_fmt(r.exact_match)} | {_fmt(r.kappa)} | {_fmt(r.icc)} |"
              for r in agreement.itertuples()]
    return lines


def _unclassified_note(stratified: dict, small: str, threshold_mm: float) -> list[str]:
    """Why a stratum's accuracy may be 0 by construction: predict did not classify its masses."""
    unclassified = int(stratified[small]["confusion"][UNKNOWN_CLASS].sum())
    if not unclassified:
        return []
    return ["", f"**Note:** {unclassified} of the {stratified[small]['n']} detected lesions under {threshold_mm:g} mm "
                "were not classified by `predict` (too small to characterise, its clinical default) and count as "
                "errors. The paper's protocol classifies every mass: predict with `--min-diameter-mm 0` to measure "
                "this stratum."]


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, bbox_inches="tight")
    return path


def _box_plot(lesions: pd.DataFrame, metric: str, label: str, path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    rows = lesions[lesions[metric].notna() & (lesions["ref_id"] > 0)]
    if rows.empty:
        return None
    classes = [c for c in (*LESION_CLASSES, "unknown") if c in set(rows["ref_class"])]
    figure, axis = plt.subplots(figsize=(1.6 * len(classes) + 2, 4))
    for offset, (side, colour) in enumerate((("left", "tab:blue"), ("right", "tab:orange"))):
        data = [rows[(rows.ref_class == c) & (rows.side == side)][metric].to_numpy() for c in classes]
        positions = np.arange(len(classes)) * 3 + offset
        parts = axis.boxplot([d if len(d) else [np.nan] for d in data], positions=positions, widths=0.8, patch_artist=True)
        for box in parts["boxes"]:
            box.set_facecolor(colour)
        axis.plot([], [], color=colour, linewidth=8, label=f"{side} kidney")
    axis.set_xticks(np.arange(len(classes)) * 3 + 0.5, classes)
    axis.set_ylabel(label)
    axis.legend()
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def _confusion_figure(classification: dict, threshold_mm: float, path: Path) -> Path:
    import matplotlib.pyplot as plt

    groups = size_groups(threshold_mm)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, group in zip(axes, groups):
        confusion = classification["stratified"][group]["confusion"]
        counts = confusion.to_numpy()
        axis.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
        for (i, j), count in np.ndenumerate(counts):
            axis.text(j, i, str(count), ha="center", va="center", color="white" if count > counts.max() / 2 else "black")
        axis.set_xticks(range(confusion.shape[1]), [f"p{c}" for c in confusion.columns])
        axis.set_yticks(range(confusion.shape[0]), list(confusion.index))
        axis.set_xlabel("predicted")
        axis.set_ylabel("reference")
        axis.set_title(f"average diameter {group}")
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def _roc_figure(lesions: pd.DataFrame, threshold_mm: float, path: Path) -> Path | None:
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    columns = [f"prob_{c}" for c in LESION_CLASSES]
    rows = lesions[(lesions.status == "TP") & lesions.ref_class.isin(LESION_CLASSES)
                   & (lesions.ref_average_diameter_mm >= threshold_mm)].dropna(subset=columns)
    curves = [c for c in LESION_CLASSES if 0 < (rows.ref_class == c).sum() < len(rows)]
    if not curves:
        return None
    figure, axis = plt.subplots(figsize=(5, 5))
    for cls in curves:
        RocCurveDisplay.from_predictions(rows.ref_class == cls, rows[f"prob_{cls}"], name=cls, ax=axis)
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title(f"ROC, lesions {size_groups(threshold_mm)[1]}")
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def _write_csv(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def write_report(per_case: pd.DataFrame, per_lesion: pd.DataFrame, kits: pd.DataFrame, errors: pd.DataFrame,
                 out_dir: Path, config) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Write every table, ``summary.md`` and the figures into ``out_dir`` (atomically, file by file).

    Returns:
        The summary table and ``{name: path}`` of the files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threshold = config.size_threshold_mm
    summary, classification = summarise(per_case, per_lesion, kits, errors, threshold)
    agreement = nephrometry_agreement(per_lesion)
    files = {name: _write_csv(table, out_dir / f"{name}.csv") for name, table in
             (("per_case", per_case), ("per_lesion", per_lesion), ("kits", kits), ("errors", errors), ("summary", summary))}
    if len(agreement):
        files["nephrometry_agreement"] = _write_csv(agreement, out_dir / "nephrometry_agreement.csv")
    files["summary_md"] = out_dir / "summary.md"
    with atomic_path(files["summary_md"]) as tmp:
        tmp.write_text(_markdown(summary, per_case, classification, errors, threshold, agreement), encoding="utf-8")
    if config.figures and len(per_lesion):
        figures = {
            "fig_dice_by_type_side": _box_plot(per_lesion, "dice", "Dice", out_dir / "fig_dice_by_type_side.png"),
            "fig_hd_by_type_side": _box_plot(per_lesion, "hd_mm", "Hausdorff distance (mm)", out_dir / "fig_hd_by_type_side.png"),
            "fig_confusion": _confusion_figure(classification, threshold, out_dir / "fig_confusion.png"),
            "fig_roc": _roc_figure(per_lesion, threshold, out_dir / "fig_roc.png"),
        }
        files.update({name: path for name, path in figures.items() if path is not None})
    return summary, files
