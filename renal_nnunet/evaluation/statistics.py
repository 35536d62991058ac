"""Statistics for comparing segmentation methods case by case (``renal-nnunet compare``).

Input tables (pandas, long format):

* ``per_case``: one row per (``method``, ``case_id``) with ``status`` ("ok" or "failed"),
  optionally ``fold``, and numeric metric columns (``kidney_dice_right``, ``mass_hd_mm``,
  ``kits_dice_tumor``, ``seconds``, ...). Dice values are fractions in [0, 1], distances are in
  mm, ``seconds`` is inference time per case. Rows whose status is not "ok" are excluded from
  every statistic; non-finite values (NaN, e.g. a Hausdorff distance when a structure is empty,
  or inf) are dropped per metric, and for paired tests a pair with a non-finite value on either
  side is dropped.
* ``per_lesion``: one row per lesion match with ``method``, ``case_id``, ``side`` ("right" /
  "left"), ``status`` ("TP", "FN" or "FP"), ``ref_class`` ("AML", "cystic", "solid", or "" for
  an FP) and ``dice`` (lesion Dice; 0 for an FN).

Output tables:

* :func:`describe_metrics`: ``method`` (the ``group`` column), ``metric``, ``n``, ``mean``,
  ``sd``, ``median``, ``q1``, ``q3``, ``iqr``, ``ci_low``, ``ci_high``.
* :func:`paired_tests`: ``baseline``, ``metric``, ``n_pairs``, ``reference_mean``,
  ``baseline_mean``, ``mean_difference``, ``difference_ci_low``, ``difference_ci_high``,
  ``statistic``, ``p_value``, ``p_holm``, ``excluded_cases``.
* :func:`detection_table`: ``method``, ``side``, ``tp``, ``fp``, ``fn``, ``recall``,
  ``recall_ci_low``, ``recall_ci_high``, ``precision``, ``precision_ci_low``,
  ``precision_ci_high``, ``f1``.
* :func:`mass_type_tests`: ``method``, ``side``, ``test``, ``group_a``, ``group_b``, ``n_a``,
  ``n_b``, ``statistic``, ``p_value``, ``note``.

Every function is pure and deterministic for a given ``seed``; the tests themselves are the
libraries' (scipy.stats, statsmodels, scikit-posthocs).
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from renal_nnunet.anatomy.labels import LESION_CLASSES

__all__ = [
    "DEFAULT_METRICS",
    "bootstrap_mean_ci",
    "describe_metrics",
    "detection_table",
    "mass_type_tests",
    "paired_tests",
    "wilson_interval",
]

logger = logging.getLogger(__name__)

DEFAULT_METRICS: tuple[str, ...] = (
    "kidney_dice_right", "kidney_dice_left", "mass_dice_right", "mass_dice_left",
    "kidney_hd_mm_right", "kidney_hd_mm_left", "mass_hd_mm",
    "kits_dice_kidney_and_masses", "kits_dice_masses", "kits_dice_tumor", "seconds",
)
"""The per-case metric columns :func:`paired_tests` tests when no ``metrics`` are given (those of
them present in the table)."""

OK_STATUS = "ok"
SIDES: tuple[str, ...] = ("all", "right", "left")
_DESCRIBE_COLUMNS = ["metric", "n", "mean", "sd", "median", "q1", "q3", "iqr", "ci_low", "ci_high"]
_PAIRED_COLUMNS = ["baseline", "metric", "n_pairs", "reference_mean", "baseline_mean", "mean_difference",
                   "difference_ci_low", "difference_ci_high", "statistic", "p_value", "p_holm", "excluded_cases"]
_DETECTION_COLUMNS = ["method", "side", "tp", "fp", "fn", "recall", "recall_ci_low", "recall_ci_high",
                      "precision", "precision_ci_low", "precision_ci_high", "f1"]
_MASS_TYPE_COLUMNS = ["method", "side", "test", "group_a", "group_b", "n_a", "n_b", "statistic", "p_value", "note"]


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def _require_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {', '.join(missing)}")


def _methods_in_order(table: pd.DataFrame, column: str = "method") -> list:
    """Distinct values of ``column`` in order of first appearance."""
    return list(pd.unique(table[column]))


def _ok_rows(per_case: pd.DataFrame) -> pd.DataFrame:
    return per_case[per_case["status"] == OK_STATUS]


def bootstrap_mean_ci(values, confidence: float = 0.95, resamples: int = 10_000,
                      seed: int = 0) -> tuple[float, float]:
    """Bootstrap confidence interval of the mean of ``values`` (in the values' own unit).

    Uses :func:`scipy.stats.bootstrap` with the percentile method, resampling with a
    ``np.random.default_rng(seed)`` generator, so the same seed gives the same interval. The
    percentile method rather than BCa: BCa's acceleration is a ratio of jackknife moments that is
    0/0 on a degenerate sample (all-equal values, common for Dice 1.0 or 0.0 on easy or missed
    structures), where scipy returns NaN with a warning; the percentile interval is always defined.

    Non-finite values are dropped. An empty sample gives ``(nan, nan)``; a sample of one value or
    of all-equal values gives ``(v, v)`` (every resample has mean ``v``).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    sample = _finite(values)
    if sample.size == 0:
        return math.nan, math.nan
    if sample.size == 1 or np.all(sample == sample[0]):
        return float(sample[0]), float(sample[0])
    # Resamples in batches of about a million values: all 10,000 at once for a few thousand cases
    # would hold hundreds of MB.
    batch = max(1, min(resamples, 1_000_000 // sample.size))
    result = stats.bootstrap((sample,), np.mean, confidence_level=confidence, n_resamples=resamples, batch=batch,
                             method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def describe_metrics(per_case: pd.DataFrame, metrics: Sequence[str], group: str = "method",
                     seed: int = 0, confidence: float = 0.95, resamples: int = 10_000) -> pd.DataFrame:
    """Descriptive statistics per (``group`` value, metric) over the rows with status "ok".

    Columns: ``<group>`` (``method`` by default), ``metric``, ``n`` (finite values used),
    ``mean``, ``sd`` (sample SD, ddof=1; NaN for n < 2), ``median``, ``q1``, ``q3`` (25th/75th
    percentiles, linear interpolation), ``iqr`` (q3 - q1), ``ci_low``, ``ci_high`` (the
    :func:`bootstrap_mean_ci` of the mean). Values are in the metric's unit. Groups keep their
    order of first appearance in ``per_case`` (failed-only groups included, with n = 0), metrics
    the given order.
    """
    _require_columns(per_case, [group, "status", *metrics], "per_case")
    ok = _ok_rows(per_case)
    rows = []
    for group_value in _methods_in_order(per_case, group):
        group_rows = ok[ok[group] == group_value]
        for metric in metrics:
            values = _finite(group_rows[metric])
            n = int(values.size)
            q1, median, q3 = np.percentile(values, [25, 50, 75]) if n else (math.nan,) * 3
            ci_low, ci_high = bootstrap_mean_ci(values, confidence, resamples, seed)
            rows.append({group: group_value, "metric": metric, "n": n,
                         "mean": float(values.mean()) if n else math.nan,
                         "sd": float(values.std(ddof=1)) if n > 1 else math.nan,
                         "median": float(median), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
                         "ci_low": ci_low, "ci_high": ci_high})
    return pd.DataFrame(rows, columns=[group, *_DESCRIBE_COLUMNS])


def _values_by_case(per_case: pd.DataFrame, method, metric: str) -> pd.Series:
    """``metric`` per case_id of ``method``, NaN where the case failed (or its value is not finite)."""
    rows = per_case[per_case["method"] == method].set_index("case_id")
    values = pd.to_numeric(rows[metric], errors="coerce").astype(float)
    return values.where((rows["status"] == OK_STATUS) & np.isfinite(values))


def paired_tests(per_case: pd.DataFrame, reference: str = "cascade", metrics: Sequence[str] | None = None,
                 seed: int = 0, confidence: float = 0.95, resamples: int = 10_000) -> pd.DataFrame:
    """Paired Wilcoxon signed-rank tests of ``reference`` against every other method, per metric.

    For each other method (``baseline``, in order of first appearance) and metric, the pairs are
    the cases that both methods predicted (status "ok" in both) with a finite value in both; the
    cases of either method that are not paired are listed, semicolon-joined and sorted, in
    ``excluded_cases`` (a case failed in one baseline leaves only that baseline's pairs).
    ``reference_mean`` and ``baseline_mean`` are over the pairs; ``mean_difference`` is the mean of
    reference - baseline (metric unit; positive means the reference is higher, which is better for
    Dice and worse for distances and seconds), with its :func:`bootstrap_mean_ci`
    (``difference_ci_low``/``high``). ``statistic`` and ``p_value`` are
    :func:`scipy.stats.wilcoxon`'s (two-sided, default zero handling and method).

    ``p_holm``: Holm's step-down correction (statsmodels ``multipletests(method="holm")``) over the
    family of every test in this table that has a p-value, i.e. all baselines x all metrics, so the
    family-wise error rate holds across the whole comparison. A metric whose pairs all have zero
    difference gets p = 1.0 and is in the family; one with no pair gets NaN and is not.

    ``metrics`` defaults to the columns of :data:`DEFAULT_METRICS` present in ``per_case``.
    """
    # statsmodels and scikit-posthocs are imported where used: statsmodels alone takes about a second
    # to import, and the package keeps `import renal_nnunet...` and the CLI's --help light.
    from statsmodels.stats.multitest import multipletests

    if metrics is None:
        metrics = [m for m in DEFAULT_METRICS if m in per_case.columns]
    _require_columns(per_case, ["method", "case_id", "status", *metrics], "per_case")
    duplicated = per_case.duplicated(["method", "case_id"])
    if duplicated.any():
        pairs = per_case.loc[duplicated, ["method", "case_id"]].astype(str).agg(" ".join, axis=1)
        raise ValueError(f"per_case has more than one row for (method, case_id): {', '.join(pairs.iloc[:5])}")
    methods = _methods_in_order(per_case)
    if reference not in methods:
        raise ValueError(f"reference method {reference!r} is not in per_case (methods: {methods})")

    rows = []
    for baseline in (m for m in methods if m != reference):
        for metric in metrics:
            reference_values, baseline_values = (_values_by_case(per_case, m, metric) for m in (reference, baseline))
            all_cases = reference_values.index.union(baseline_values.index)
            reference_values, baseline_values = reference_values.reindex(all_cases), baseline_values.reindex(all_cases)
            paired = reference_values.notna() & baseline_values.notna()
            excluded = sorted(str(c) for c in all_cases[~paired.to_numpy()])
            reference_paired = reference_values[paired].to_numpy()
            baseline_paired = baseline_values[paired].to_numpy()
            differences = reference_paired - baseline_paired
            n_pairs = int(differences.size)
            statistic = p_value = math.nan
            if n_pairs and np.all(differences == 0):
                # Wilcoxon is undefined when every difference is zero (no ranks to sign): the methods
                # agree on every case, so there is no evidence of a difference.
                p_value = 1.0
            elif n_pairs:
                result = stats.wilcoxon(reference_paired, baseline_paired, alternative="two-sided")
                statistic, p_value = float(result.statistic), float(result.pvalue)
            ci_low, ci_high = bootstrap_mean_ci(differences, confidence, resamples, seed)
            if excluded:
                logger.debug("%s vs %s, %s: %d case(s) unpaired: %s", reference, baseline, metric,
                             len(excluded), "; ".join(excluded))
            rows.append({"baseline": baseline, "metric": metric, "n_pairs": n_pairs,
                         "reference_mean": float(reference_paired.mean()) if n_pairs else math.nan,
                         "baseline_mean": float(baseline_paired.mean()) if n_pairs else math.nan,
                         "mean_difference": float(differences.mean()) if n_pairs else math.nan,
                         "difference_ci_low": ci_low, "difference_ci_high": ci_high,
                         "statistic": statistic, "p_value": p_value, "p_holm": math.nan,
                         "excluded_cases": ";".join(excluded)})
    table = pd.DataFrame(rows, columns=_PAIRED_COLUMNS)
    tested = table["p_value"].notna()
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"].to_numpy(), method="holm")[1]
    return table


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``successes / trials`` (fractions in [0, 1]).

    Via statsmodels ``proportion_confint(method="wilson")``; it stays inside [0, 1] and is sensible
    at 0 or ``trials`` successes, unlike the normal (Wald) interval. ``trials`` 0 gives
    ``(nan, nan)``.
    """
    from statsmodels.stats.proportion import proportion_confint

    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return math.nan, math.nan
    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def detection_table(per_lesion: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Lesion detection counts and rates per method and side ("all", "right", "left").

    ``tp`` counts reference lesions detected, ``fn`` reference lesions missed, ``fp`` predicted
    lesions matching none (the definitions of :mod:`renal_nnunet.evaluation.detection`).
    ``recall`` = tp / (tp + fn), ``precision`` = tp / (tp + fp), ``f1`` = 2 tp / (2 tp + fp + fn)
    (NaN where the denominator is 0); ``*_ci_low``/``*_ci_high`` are :func:`wilson_interval`.
    Methods keep their order of first appearance.
    """
    _require_columns(per_lesion, ["method", "side", "status"], "per_lesion")
    unknown = set(per_lesion["status"]) - {"TP", "FN", "FP"}
    if unknown:
        raise ValueError(f"per_lesion has unknown status value(s): {sorted(map(str, unknown))}")
    rows = []
    for method in _methods_in_order(per_lesion):
        lesions = per_lesion[per_lesion["method"] == method]
        for side in SIDES:
            side_lesions = lesions if side == "all" else lesions[lesions["side"] == side]
            tp, fp, fn = (int((side_lesions["status"] == s).sum()) for s in ("TP", "FP", "FN"))
            recall_ci = wilson_interval(tp, tp + fn, confidence)
            precision_ci = wilson_interval(tp, tp + fp, confidence)
            rows.append({"method": method, "side": side, "tp": tp, "fp": fp, "fn": fn,
                         "recall": _ratio(tp, tp + fn), "recall_ci_low": recall_ci[0], "recall_ci_high": recall_ci[1],
                         "precision": _ratio(tp, tp + fp), "precision_ci_low": precision_ci[0],
                         "precision_ci_high": precision_ci[1], "f1": _ratio(2 * tp, 2 * tp + fp + fn)})
    return pd.DataFrame(rows, columns=_DETECTION_COLUMNS)


def _class_sizes(groups: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{name} n={values.size}" for name, values in groups.items())


def _mass_type_rows(method, side: str, lesions: pd.DataFrame) -> list[dict]:
    """Kruskal-Wallis over the mass types present, then Dunn's pairwise tests (Holm-adjusted)."""
    import scikit_posthocs

    groups = {name: _finite(lesions.loc[lesions["ref_class"] == name, "dice"]) for name in LESION_CLASSES}
    groups = {name: values for name, values in groups.items() if values.size}
    kruskal = {"method": method, "side": side, "test": "kruskal", "group_a": "", "group_b": "",
               "n_a": sum(v.size for v in groups.values()), "n_b": pd.NA,
               "statistic": math.nan, "p_value": math.nan, "note": _class_sizes(groups)}
    if len(groups) < 2:
        kruskal["note"] = f"fewer than 2 mass types with lesions ({_class_sizes(groups) or 'none'})"
        return [kruskal]
    all_values = np.concatenate(list(groups.values()))
    if np.all(all_values == all_values[0]):
        # Every rank ties: H is 0/0 (scipy raises), and there is nothing to compare.
        kruskal["note"] = f"all lesion Dice values equal ({all_values[0]:g}); {_class_sizes(groups)}"
        return [kruskal]
    result = stats.kruskal(*groups.values())
    kruskal["statistic"], kruskal["p_value"] = float(result.statistic), float(result.pvalue)
    rows = [kruskal]
    long = pd.DataFrame({"dice": all_values, "ref_class": np.repeat(list(groups), [v.size for v in groups.values()])})
    dunn = scikit_posthocs.posthoc_dunn(long, val_col="dice", group_col="ref_class", p_adjust="holm")
    names = list(groups)
    for i, group_a in enumerate(names):
        for group_b in names[i + 1:]:
            rows.append({"method": method, "side": side, "test": "dunn", "group_a": group_a, "group_b": group_b,
                         "n_a": groups[group_a].size, "n_b": groups[group_b].size, "statistic": math.nan,
                         "p_value": float(dunn.loc[group_a, group_b]),
                         "note": "Holm-adjusted over this method and side's pairs"})
    return rows


def mass_type_tests(per_lesion: pd.DataFrame) -> pd.DataFrame:
    """Does lesion Dice differ between mass types? The paper's test (Zhao et al. 2023, Fig. 7).

    Per method and side ("right", "left", "all"), the reference lesions (TP and FN rows whose
    ``ref_class`` is AML, cystic or solid; an FN counts with Dice 0) are grouped by ``ref_class``.
    Kruskal-Wallis (:func:`scipy.stats.kruskal`) over the classes with at least one lesion gives a
    ``test`` "kruskal" row: ``statistic`` is H, ``n_a`` the number of lesions tested, ``n_b`` empty,
    ``note`` the class sizes. With fewer than 2 classes, or all Dice values equal, H is undefined:
    the row has NaN p and says why in ``note``, and no Dunn rows follow. Otherwise Dunn's post-hoc
    test (``scikit_posthocs.posthoc_dunn``, tie-corrected, Holm-adjusted over the pairs of that
    method and side) gives one "dunn" row per pair of classes: ``n_a``/``n_b`` are the class sizes,
    ``statistic`` NaN, ``p_value`` the adjusted p.
    """
    _require_columns(per_lesion, ["method", "side", "status", "ref_class", "dice"], "per_lesion")
    reference_lesions = per_lesion[per_lesion["status"].isin(["TP", "FN"]) & per_lesion["ref_class"].isin(LESION_CLASSES)]
    rows = []
    for method in _methods_in_order(per_lesion):
        lesions = reference_lesions[reference_lesions["method"] == method]
        for side in ("right", "left", "all"):
            rows += _mass_type_rows(method, side, lesions if side == "all" else lesions[lesions["side"] == side])
    table = pd.DataFrame(rows, columns=_MASS_TYPE_COLUMNS)
    table[["n_a", "n_b"]] = table[["n_a", "n_b"]].astype("Int64")
    return table
