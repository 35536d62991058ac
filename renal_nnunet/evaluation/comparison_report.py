"""``comparison.md``: the comparison of methods as one readable page.

Measured figures (means with bootstrap 95 % CIs, paired tests against the cascade with Holm-adjusted
p-values, detection with Wilson intervals, the paper's Kruskal-Wallis / Dunn test of mass Dice by
mass type) come from the tables :func:`renal_nnunet.pipeline.compare.compare_methods` writes.
Published figures of other work on other data follow in their own table, never mixed with them.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from renal_nnunet.io import atomic_path

__all__ = ["PUBLISHED_FIGURES", "write_comparison_markdown"]

PUBLISHED_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("Zhao et al. 2023 (the paper's cascade)", "KiTS21, 300 cases, external test",
     "Dice kidney right 0.97 / left 0.96; renal mass right 0.64 / left 0.68 (its Table 1)"),
    ("Zhao et al. 2023 (the paper's cascade)", "own test set, 65 cases",
     "Dice kidney right 0.99 / left 0.99; renal mass right 0.83 / left 0.75 (its Table 1)"),
    ("nnU-Net 3d_lowres → 3d_cascade_fullres", "KiTS21, 5-fold CV",
     "Dice kidney+masses 0.9747, masses 0.8799, tumour 0.8491 (KiTS21 repository's nnU-Net baseline)"),
    ("nnU-Net 3d_fullres", "KiTS21, 5-fold CV", "Dice kidney+masses 0.9666, masses 0.8618, tumour 0.8493"),
    ("nnU-Net 3d_lowres", "KiTS21, 5-fold CV", "Dice kidney+masses 0.9683, masses 0.8702, tumour 0.8508"),
    ("nnU-Net original / ResEnc M / ResEnc L / ResEnc XL", "KiTS23, 5-fold CV",
     "mean HEC Dice 86.04 / 86.79 / 88.17 / 88.67 (nnU-Net documentation, resenc_presets.md)"),
)
"""(method, data, figures) of published work: other data, other protocols; for orientation only."""

METRIC_NAMES: dict[str, str] = {
    "kidney_dice_right": "Kidney Dice R", "kidney_dice_left": "Kidney Dice L",
    "mass_dice_right": "Mass Dice R", "mass_dice_left": "Mass Dice L",
    "kits_dice_kidney_and_masses": "KiTS kidney+masses", "kits_dice_masses": "KiTS masses",
    "kits_dice_tumor": "KiTS tumour", "mass_hd_mm": "Mass HD (mm)", "kidney_hd_mm_right": "Kidney HD R (mm)",
    "kidney_hd_mm_left": "Kidney HD L (mm)", "seconds": "s / case",
}
"""Headers of the per-case metrics."""

TABLE_METRICS: tuple[str, ...] = ("kidney_dice_right", "kidney_dice_left", "mass_dice_right", "mass_dice_left",
                                  "kits_dice_kidney_and_masses", "kits_dice_masses", "kits_dice_tumor", "mass_hd_mm",
                                  "seconds")
"""Metrics of the main table (every metric is in ``descriptive.csv``)."""


def _number(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _methods_table(descriptive: pd.DataFrame) -> list[str]:
    rows = []
    for method, group in descriptive.groupby("method", sort=False):
        by_metric = group.set_index("metric")
        cells = [method]
        for metric in TABLE_METRICS:
            if metric not in by_metric.index or by_metric.loc[metric, "n"] == 0:
                cells.append("–")
                continue
            r = by_metric.loc[metric]
            cells.append(f"{_number(r['mean'])} [{_number(r.ci_low)}, {_number(r.ci_high)}] (n={int(r.n)})")
        rows.append(cells)
    return _markdown_table(["method", *(METRIC_NAMES[m] for m in TABLE_METRICS)], rows)


def _tests_table(statistics: pd.DataFrame) -> list[str]:
    rows = [[r.baseline, METRIC_NAMES.get(r.metric, r.metric), str(int(r.n_pairs)),
             f"{_number(r.mean_difference)} [{_number(r.difference_ci_low)}, {_number(r.difference_ci_high)}]",
             _p(r.p_value), _p(r.p_holm)] for r in statistics.itertuples()]
    return _markdown_table(["baseline", "metric", "pairs", "cascade − baseline [95 % CI]", "p (Wilcoxon)", "p (Holm)"],
                           rows)


def _detection_table(detection: pd.DataFrame) -> list[str]:
    rows = [[r.method, r.side, f"{int(r.tp)}/{int(r.fp)}/{int(r.fn)}",
             f"{_number(r.recall)} [{_number(r.recall_ci_low)}, {_number(r.recall_ci_high)}]",
             f"{_number(r.precision)} [{_number(r.precision_ci_low)}, {_number(r.precision_ci_high)}]", _number(r.f1)]
            for r in detection.itertuples()]
    return _markdown_table(["method", "side", "TP/FP/FN", "recall [95 % Wilson]", "precision [95 % Wilson]", "F1"], rows)


def _mass_type_table(tests: pd.DataFrame) -> list[str]:
    rows = [[r.method, r.side, r.test, f"{r.group_a} vs {r.group_b}" if r.test == "dunn" else "AML / cystic / solid",
             f"{int(r.n_a) if not pd.isna(r.n_a) else '–'}/{int(r.n_b) if not pd.isna(r.n_b) else '–'}"
             if r.test == "dunn" else "", _p(r.p_value), r.note if isinstance(r.note, str) else ""]
            for r in tests.itertuples()]
    return _markdown_table(["method", "side", "test", "groups", "n", "p", "note"], rows)


def write_comparison_markdown(tables: dict[str, pd.DataFrame], runs: list[dict], path: str | Path,
                              boxplots: str | None = None) -> Path:
    """Write ``comparison.md`` from the comparison's tables (keys as the CSV file names:
    ``per_case.csv``, ``descriptive.csv``, ``statistics.csv``, ``detection.csv``,
    ``mass_type_tests.csv``) and its runs (``{"fold", "folds", "cases"}`` each)."""
    path = Path(path)
    per_case = tables["per_case.csv"]
    cross_validated = any(run["fold"] is not None for run in runs)
    lines = ["# Comparison of methods", ""]
    if cross_validated:
        folds = ", ".join(f"fold {run['fold']}: {len(run['cases'])} case(s)" for run in runs)
        lines += [f"Cross-validation: every case is predicted once, by the models of the fold that held it out "
                  f"({folds}). Every method uses the same splits.", ""]
    else:
        lines += [f"Test set of {sum(len(run['cases']) for run in runs)} case(s), every method with folds "
                  f"{runs[0]['folds'] if runs else []}.", ""]
    lines += ["## Measured here", "", "Mean per case [bootstrap 95 % CI of the mean] (n cases with a value). "
              "Dice of a structure absent from both prediction and reference is not counted.", "",
              *_methods_table(tables["descriptive.csv"]), ""]
    failed = per_case[per_case.status != "ok"]
    if len(failed):
        lines += ["**Failed cases** (scored as empty predictions in `comparison.csv`, left out of the statistics "
                  "and of the paired tests of that method):", ""]
        lines += [f"- {r.method}: {r.case_id}" for r in failed.itertuples()] + [""]
    lines += ["## Paired tests against the cascade", "",
              "Wilcoxon signed-rank test on the cases both methods predicted; Holm's correction over every test "
              "in this table.", "", *_tests_table(tables["statistics.csv"]), "",
              "## Lesion detection", "", *_detection_table(tables["detection.csv"]), "",
              "## Mass Dice by mass type (the paper's test)", "",
              "Kruskal-Wallis over AML, cystic and solid reference masses, then Dunn's test (Holm-adjusted).", "",
              *_mass_type_table(tables["mass_type_tests.csv"]), ""]
    if boxplots:
        lines += [f"![Dice per method and region]({boxplots})", ""]
    lines += ["## Published figures (other data, other protocols: not measured here)", "",
              *_markdown_table(["method", "data", "figures"], [list(row) for row in PUBLISHED_FIGURES]), ""]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    return path
