"""Comparison statistics against hand-checked values (scipy's documented Wilcoxon example, Holm's rule,
the Wilson formula, Dunn's z from mean ranks), failed-case handling, and the box-plot figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from renal_nnunet.evaluation import comparison_plots
from renal_nnunet.evaluation.statistics import (
    bootstrap_mean_ci,
    describe_metrics,
    detection_table,
    mass_type_tests,
    paired_tests,
    wilson_interval,
)

# scipy.stats.wilcoxon's documentation example: two-sided p = 0.0413, statistic (the smaller rank sum) 24.
SCIPY_DIFFERENCES = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]


def _holm_by_hand(p_values) -> np.ndarray:
    """Holm's step-down rule: the k-th smallest of m p-values times (m - k + 1), made monotone, capped at 1."""
    p_values = np.asarray(p_values, dtype=float)
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate([(m - k) * p_values[i] for k, i in enumerate(order)]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def _per_case(method_differences: dict[str, list[float]], metric: str = "kidney_dice_right") -> pd.DataFrame:
    """A cascade row per case, and per baseline a row with the cascade value minus its difference."""
    n = len(next(iter(method_differences.values())))
    reference = 100.0 + np.arange(n) * 3.0
    rows = [{"method": "cascade", "case_id": f"c{i:02d}", "status": "ok", metric: reference[i]} for i in range(n)]
    for method, differences in method_differences.items():
        rows += [{"method": method, "case_id": f"c{i:02d}", "status": "ok", metric: reference[i] - d}
                 for i, d in enumerate(differences)]
    return pd.DataFrame(rows)


def test_holm_helper_matches_the_worked_example():
    assert _holm_by_hand([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_wilcoxon_on_scipys_documented_example():
    table = paired_tests(_per_case({"nnunet": SCIPY_DIFFERENCES}), metrics=["kidney_dice_right"])
    row = table.iloc[0]
    assert row["baseline"] == "nnunet" and row["n_pairs"] == 15
    assert row["statistic"] == 24
    assert round(row["p_value"], 3) == 0.041  # 0.0413
    assert row["mean_difference"] == pytest.approx(314 / 15)  # reference - baseline
    assert row["reference_mean"] - row["baseline_mean"] == pytest.approx(314 / 15)
    assert row["difference_ci_low"] < 314 / 15 < row["difference_ci_high"]
    assert row["p_holm"] == pytest.approx(row["p_value"])  # a family of one
    assert row["excluded_cases"] == ""


def test_holm_is_over_every_test_in_the_table():
    """Three baselines x two metrics with p-values; a metric with no pair has none and is outside the family."""
    differences = {
        "one_stage": SCIPY_DIFFERENCES,
        "nnunet_3d": [float(d) for d in range(1, 16)],  # all positive: exact p = 2 / 2**15
        "nnunet_2d": [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15],
    }
    table = _per_case(differences, "kidney_dice_right")
    table["mass_dice_left"] = table["kidney_dice_right"] * 0.5
    table["mass_hd_mm"] = math.nan  # no pair at all
    result = paired_tests(table, metrics=["kidney_dice_right", "mass_dice_left", "mass_hd_mm"])
    assert list(result["baseline"]) == ["one_stage"] * 3 + ["nnunet_3d"] * 3 + ["nnunet_2d"] * 3
    tested = result[result["p_value"].notna()]
    assert len(tested) == 6 and set(tested["metric"]) == {"kidney_dice_right", "mass_dice_left"}
    assert result.loc[result["metric"] == "mass_hd_mm", "p_holm"].isna().all()
    assert (result.loc[result["metric"] == "mass_hd_mm", "n_pairs"] == 0).all()
    assert tested["p_holm"].to_numpy() == pytest.approx(_holm_by_hand(tested["p_value"]))
    p_3d = result.set_index(["baseline", "metric"]).loc[("nnunet_3d", "kidney_dice_right"), "p_value"]
    assert p_3d == pytest.approx(2 / 2**15)


def test_all_zero_differences_give_p_one():
    result = paired_tests(_per_case({"nnunet": [0.0] * 6}), metrics=["kidney_dice_right"])
    assert result.loc[0, "p_value"] == 1.0 and result.loc[0, "mean_difference"] == 0
    assert (result.loc[0, "difference_ci_low"], result.loc[0, "difference_ci_high"]) == (0.0, 0.0)


def test_failed_case_is_excluded_from_its_pair_only():
    table = _per_case({"nnunet": [0.1, 0.2, 0.3, -0.1, 0.5, 0.6], "one_stage": [0.2, 0.1, 0.4, 0.3, -0.2, 0.7]})
    failed = (table["method"] == "nnunet") & (table["case_id"] == "c02")
    table.loc[failed, "status"] = "failed"
    table.loc[failed, "kidney_dice_right"] = 1000.0  # must not reach any statistic
    table["mass_hd_mm"] = 5.0
    table.loc[(table["method"] == "cascade") & (table["case_id"] == "c04"), "mass_hd_mm"] = math.nan
    result = paired_tests(table, metrics=["kidney_dice_right", "mass_hd_mm"]).set_index(["baseline", "metric"])
    assert result.loc[("nnunet", "kidney_dice_right"), "excluded_cases"] == "c02"
    assert result.loc[("nnunet", "kidney_dice_right"), "n_pairs"] == 5
    assert result.loc[("nnunet", "kidney_dice_right"), "mean_difference"] == pytest.approx((0.1 + 0.2 - 0.1 + 0.5 + 0.6) / 5)
    assert result.loc[("one_stage", "kidney_dice_right"), "excluded_cases"] == ""
    assert result.loc[("one_stage", "kidney_dice_right"), "n_pairs"] == 6
    # a NaN on the reference side drops that pair for every baseline
    assert result.loc[("nnunet", "mass_hd_mm"), "excluded_cases"] == "c02;c04"
    assert result.loc[("one_stage", "mass_hd_mm"), "excluded_cases"] == "c04"

    described = describe_metrics(table, ["kidney_dice_right"]).set_index("method")
    assert list(described.index) == ["cascade", "nnunet", "one_stage"]
    nnunet_values = table.loc[(table["method"] == "nnunet") & ~failed, "kidney_dice_right"]
    assert described.loc["nnunet", "n"] == 5
    assert described.loc["nnunet", "mean"] == pytest.approx(nnunet_values.mean())
    assert described.loc["cascade", "n"] == 6


def test_describe_metrics_by_hand():
    values = [0.2, 0.4, 0.6, 0.8, math.nan]
    table = pd.DataFrame({"method": ["nnunet"] * 5 + ["cascade"] * 2, "case_id": list("abcde") + ["a", "b"],
                          "status": ["ok"] * 7, "kidney_dice_left": values + [0.9, 0.9]})
    described = describe_metrics(table, ["kidney_dice_left"])
    assert list(described.columns) == ["method", "metric", "n", "mean", "sd", "median", "q1", "q3", "iqr",
                                       "ci_low", "ci_high"]
    assert list(described["method"]) == ["nnunet", "cascade"]  # order of first appearance
    row = described.iloc[0]
    assert row["n"] == 4 and row["mean"] == pytest.approx(0.5) and row["median"] == pytest.approx(0.5)
    assert row["sd"] == pytest.approx(math.sqrt((0.09 + 0.01 + 0.01 + 0.09) / 3))
    # linear-interpolation quartiles of 0.2, 0.4, 0.6, 0.8: positions 0.75 and 2.25
    assert (row["q1"], row["q3"], row["iqr"]) == pytest.approx((0.35, 0.65, 0.30))
    assert 0.2 <= row["ci_low"] < 0.5 < row["ci_high"] <= 0.8
    constant = described.iloc[1]
    assert (constant["ci_low"], constant["ci_high"]) == (0.9, 0.9) and constant["sd"] == 0


def test_bootstrap_ci_matches_the_normal_approximation_for_a_large_sample():
    sample = np.random.default_rng(42).normal(5.0, 2.0, 1000)
    half_width = 1.96 * sample.std(ddof=1) / math.sqrt(sample.size)  # 0.124
    low, high = bootstrap_mean_ci(sample, seed=3)
    assert low == pytest.approx(sample.mean() - half_width, abs=0.01)
    assert high == pytest.approx(sample.mean() + half_width, abs=0.01)
    assert bootstrap_mean_ci(sample, seed=3) == (low, high)
    assert bootstrap_mean_ci(sample, seed=4) != (low, high)


def test_bootstrap_ci_degenerate_samples():
    assert bootstrap_mean_ci([0.7, 0.7, 0.7, 0.7]) == (0.7, 0.7)
    assert bootstrap_mean_ci([0.3]) == (0.3, 0.3)
    assert bootstrap_mean_ci([0.3, math.nan]) == (0.3, 0.3)
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))


def test_wilson_interval_by_hand():
    n, p, z = 10, 0.8, 1.959963984540054
    centre, spread = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    by_hand = ((centre - spread) / (1 + z**2 / n), (centre + spread) / (1 + z**2 / n))
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert (low, high) == pytest.approx(by_hand)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_detection_table_counts_rates_and_wilson_intervals():
    lesions = pd.DataFrame(
        [{"method": "cascade", "case_id": f"c{i}", "side": "right", "status": "TP", "ref_class": "AML", "dice": 0.8}
         for i in range(8)]
        + [{"method": "cascade", "case_id": f"c{i}", "side": "right", "status": "FN", "ref_class": "solid", "dice": 0.0}
           for i in range(2)]
        + [{"method": "cascade", "case_id": "c0", "side": "left", "status": "FP", "ref_class": "", "dice": 0.0}]
        + [{"method": "nnunet", "case_id": "c0", "side": "right", "status": "FN", "ref_class": "AML", "dice": 0.0}])
    table = detection_table(lesions).set_index(["method", "side"])
    assert list(table.index) == [("cascade", "all"), ("cascade", "right"), ("cascade", "left"),
                                 ("nnunet", "all"), ("nnunet", "right"), ("nnunet", "left")]
    right = table.loc[("cascade", "right")]
    assert (right["tp"], right["fp"], right["fn"]) == (8, 0, 2)
    assert right["recall"] == 0.8 and right["precision"] == 1.0
    assert (round(right["recall_ci_low"], 4), round(right["recall_ci_high"], 4)) == (0.4902, 0.9433)
    every = table.loc[("cascade", "all")]
    assert (every["tp"], every["fp"], every["fn"]) == (8, 1, 2)
    assert every["precision"] == pytest.approx(8 / 9) and every["f1"] == pytest.approx(16 / 19)
    left = table.loc[("cascade", "left")]
    assert math.isnan(left["recall"]) and math.isnan(left["recall_ci_low"]) and left["precision"] == 0.0
    nnunet = table.loc[("nnunet", "all")]
    assert nnunet["recall"] == 0.0 and math.isnan(nnunet["precision"]) and nnunet["f1"] == 0.0


def _mass_type_lesions() -> pd.DataFrame:
    dice = {"AML": [0.1, 0.2, 0.3], "cystic": [0.4, 0.5, 0.6], "solid": [0.7, 0.8, 0.9]}
    rows = [{"method": "cascade", "case_id": f"{cls}{i}", "side": "right", "status": "TP", "ref_class": cls, "dice": d}
            for cls, values in dice.items() for i, d in enumerate(values)]
    rows.append({"method": "cascade", "case_id": "x", "side": "right", "status": "FP", "ref_class": "", "dice": 0.0})
    return pd.DataFrame(rows)


def test_kruskal_and_dunn_by_hand():
    """Ranks 1-9 in three groups: mean ranks 2, 5, 8; H = 12/(N(N+1)) * sum n_i R_i^2 - 3(N+1) = 7.2,
    p = exp(-H/2) (chi-square, 2 df); Dunn's z = (mean-rank difference) / sqrt(N(N+1)/12 * (1/3 + 1/3)) = diff / sqrt(5)."""
    table = mass_type_tests(_mass_type_lesions())
    right = table[(table["method"] == "cascade") & (table["side"] == "right")].set_index("test")
    kruskal = right.loc["kruskal"]
    assert kruskal["statistic"] == pytest.approx(12 / 90 * 3 * (4 + 25 + 64) - 30) and kruskal["statistic"] == pytest.approx(7.2)
    assert kruskal["p_value"] == pytest.approx(math.exp(-3.6)) and round(kruskal["p_value"], 4) == 0.0273
    assert kruskal["n_a"] == 9 and kruskal["group_a"] == "" and kruskal["group_b"] == ""

    dunn = right.loc["dunn"].set_index(["group_a", "group_b"])
    assert list(dunn.index) == [("AML", "cystic"), ("AML", "solid"), ("cystic", "solid")]
    p_raw = {diff: math.erfc(diff / math.sqrt(5) / math.sqrt(2)) for diff in (3, 6)}  # two-sided normal
    assert round(p_raw[3], 4) == 0.1797 and round(p_raw[6], 4) == 0.0073
    assert dunn.loc[("AML", "solid"), "p_value"] == pytest.approx(3 * p_raw[6])  # smallest of three
    assert dunn.loc[("AML", "cystic"), "p_value"] == pytest.approx(2 * p_raw[3])
    assert dunn.loc[("cystic", "solid"), "p_value"] == pytest.approx(2 * p_raw[3])
    assert round(dunn.loc[("AML", "solid"), "p_value"], 4) == 0.0219
    assert round(dunn.loc[("AML", "cystic"), "p_value"], 4) == 0.3594
    assert (dunn["n_a"] == 3).all() and (dunn["n_b"] == 3).all() and dunn["statistic"].isna().all()

    # every lesion is on the right: "all" is the same test, and the left side has nothing to test
    every = table[table["side"] == "all"]
    assert every.loc[every["test"] == "kruskal", "statistic"].iloc[0] == pytest.approx(7.2)
    left = table[table["side"] == "left"]
    assert list(left["test"]) == ["kruskal"] and math.isnan(left["p_value"].iloc[0]) and left["note"].iloc[0]


def test_mass_type_tests_untestable_cases_say_why():
    lesions = _mass_type_lesions()
    one_class = lesions[lesions["ref_class"].isin(["AML", ""])]
    row = mass_type_tests(one_class).iloc[0]
    assert math.isnan(row["p_value"]) and "fewer than 2" in row["note"]
    equal = lesions.assign(dice=0.5)
    right = mass_type_tests(equal).query("side == 'right'")
    assert list(right["test"]) == ["kruskal"] and math.isnan(right["p_value"].iloc[0]) and "equal" in right["note"].iloc[0]
    # an FN is a reference lesion with Dice 0: it is tested
    missed = pd.concat([lesions, pd.DataFrame([{"method": "cascade", "case_id": "y", "side": "right", "status": "FN",
                                                "ref_class": "solid", "dice": 0.0}])])
    row = mass_type_tests(missed).query("side == 'right' and test == 'dunn' and group_a == 'AML' and group_b == 'solid'")
    assert row["n_b"].iloc[0] == 4


def test_box_plot_png_has_one_subplot_per_metric(tmp_path, monkeypatch):
    saved_titles = []

    class RecordingFigure(comparison_plots.Figure):
        def savefig(self, *args, **kwargs):
            saved_titles.append([axis.get_title() for axis in self.axes])
            return super().savefig(*args, **kwargs)

    monkeypatch.setattr(comparison_plots, "Figure", RecordingFigure)
    rng = np.random.default_rng(0)
    table = pd.DataFrame([{"method": m, "case_id": f"c{i}", "status": "ok", "kidney_dice_right": rng.uniform(0.8, 1),
                           "kidney_dice_left": rng.uniform(0.8, 1), "mass_dice_right": rng.uniform(0, 1),
                           "mass_hd_mm": rng.uniform(1, 30)}
                          for m in ("cascade", "nnunet_3d_fullres", "one_stage_grid") for i in range(12)])
    table.loc[0, "status"] = "failed"
    table.loc[1, "mass_hd_mm"] = math.nan
    metrics = {"kidney_dice_right": "Kidney Dice, right", "kidney_dice_left": "Kidney Dice, left",
               "mass_dice_right": "Mass Dice, right", "mass_hd_mm": "Mass HD (mm)"}
    path = comparison_plots.plot_metric_boxes(table, metrics, tmp_path / "figs" / "boxes.png")
    assert path == tmp_path / "figs" / "boxes.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert saved_titles == [list(metrics.values())]
    assert [p.name for p in path.parent.iterdir()] == ["boxes.png"]  # nothing temporary left
