"""Figures for ``renal-nnunet compare``: per-case metric distributions per method, like the paper's
Fig. 8 (Zhao et al. 2023).

Input: the ``per_case`` table of :mod:`renal_nnunet.evaluation.statistics` (one row per
(``method``, ``case_id``) with ``status`` "ok"/"failed" and numeric metric columns). Rows whose
status is not "ok" and non-finite values are left out of every box.

Figures are drawn on a :class:`matplotlib.figure.Figure` (no pyplot, no global backend switch, so
importing this module changes nothing for the caller) and saved atomically.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from renal_nnunet.io import atomic_path

__all__ = ["plot_metric_boxes"]

logger = logging.getLogger(__name__)

_MAX_COLUMNS = 3


def plot_metric_boxes(per_case: pd.DataFrame, metrics: dict[str, str], path: str | os.PathLike,
                      dpi: int = 120, seed: int = 0) -> Path:
    """Box plots of per-case ``metrics`` per method; returns ``path`` (PNG, or the suffix's format).

    One subplot per metric, titled with the dict value (``{"kidney_dice_right": "Kidney Dice,
    right"}``); in each, one box per method in order of first appearance (median, quartiles,
    whiskers at 1.5 IQR), with every case drawn as a point, jittered sideways by a ``seed``-ed
    generator so the figure is reproducible. Methods with no value for a metric get an empty slot.
    """
    missing = [c for c in ("method", "status", *metrics) if c not in per_case.columns]
    if missing:
        raise ValueError(f"per_case lacks the column(s) {', '.join(missing)}")
    if not metrics:
        raise ValueError("no metrics to plot")
    path = Path(path)
    ok = per_case[per_case["status"] == "ok"]
    methods = list(pd.unique(per_case["method"]))
    positions = np.arange(1, len(methods) + 1)
    jitter = np.random.default_rng(seed)

    columns = min(_MAX_COLUMNS, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    figure = Figure(figsize=(max(3.0, 0.9 * len(methods) + 1.5) * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes[len(metrics):]:
        figure.delaxes(axis)
    for axis, (metric, title) in zip(axes, metrics.items()):
        values = []
        for method in methods:
            column = pd.to_numeric(ok.loc[ok["method"] == method, metric], errors="coerce").to_numpy(dtype=float)
            values.append(column[np.isfinite(column)])
        drawn = [i for i, v in enumerate(values) if v.size]
        if drawn:
            # Outliers are not drawn as fliers: every case is already a point.
            axis.boxplot([values[i] for i in drawn], positions=positions[drawn], widths=0.6, showfliers=False)
        for position, method_values in zip(positions, values):
            axis.scatter(position + jitter.uniform(-0.15, 0.15, method_values.size), method_values,
                         s=10, alpha=0.6, zorder=3)
        # Each label says how many cases the box is over: failed cases and empty structures differ by method.
        labels = [f"{method} (n={method_values.size})" for method, method_values in zip(methods, values)]
        slanted = len(methods) > 1 and max(len(label) for label in labels) > 14
        axis.set_xticks(positions, labels=labels, rotation=30 if slanted else 0, ha="right" if slanted else "center")
        axis.set_xlim(0.4, len(methods) + 0.6)
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
        if not drawn:
            logger.warning("box plot %r: no method has a finite %s value", title, metric)
    with atomic_path(path) as tmp:
        # The format from the target's suffix: the temporary name's suffix is ".tmp" when it has none.
        figure.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    return path
