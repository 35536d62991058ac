"""Pictures of what each mass's scores were read from (matplotlib, Agg backend).

Per mass: the axial plane that decides E (kidney, its outline without the mass dashed, sinus fat,
collecting system, hilum, the mass, and the kidney centroid's antero-posterior line with A's
+-10 mm band) and the coronal plane that decides L (the same structures, the polar lines, the
axial renal midline dashed and the PADUA sinus lines dotted), in radiological view: the patient's
right on the screen's left; axial rows anterior at the top, coronal superior at the top.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from renal_nnunet.io import atomic_path
from renal_nnunet.nephrometry.score import MassNephrometry
from renal_nnunet.nephrometry.view import VIEW_LABELS, MassView

__all__ = ["STRUCTURE_COLOURS", "mass_caption", "draw_mass_view", "legend_handles", "save_nephrometry_figure"]

STRUCTURE_COLOURS: dict[str, str] = {"kidney": "#33dd33", "sinus fat": "#ffd700", "collecting system": "#ff8c00",
                                     "hilum": "#ff33ff", "mass": "#ff3030"}
LINE_COLOURS = {"polar lines": "#00e5ff", "midline": "#00e5ff", "sinus lines": "#ffd700", "kidney centroid (A)": "white"}
DISPLAY_LEVEL_HU, DISPLAY_WIDTH_HU = 40.0, 400.0


def mass_caption(result: MassNephrometry) -> str:
    """One line per mass: its R.E.N.A.L. and PADUA codes with their items, and the C-index.

    Measurements-only results say so, with their notes.
    """
    head = f"#{result.lesion_id} {result.side}".strip()
    p, m = result.points, result.measurements
    if m is None:
        return f"{head}: not scored ({'; '.join(result.notes)})"
    sizes = f"{m.max_diameter_mm:.0f} mm, {100 * (1 - m.endophytic_fraction):.0f}% exophytic, " \
            f"{m.sinus_distance_mm:.1f} mm to sinus, C-index {result.c_index:.2f}"
    if p is None:
        return f"{head}: {sizes} ({'; '.join(result.notes)})"
    row = result.to_row()
    renal = (f"R.E.N.A.L. {p.renal_code} ({row['renal_category']}: R{p.renal_r} E{p.renal_e} N{p.renal_n} "
             f"A={p.renal_a} L{p.renal_l}{'' if p.renal_h is not None else ', h n/a'})")
    padua = f"PADUA {p.padua_score}{p.padua_suffix} ({row['padua_category']})"
    notes = f" [{'; '.join(result.notes)}]" if result.notes else ""
    return f"{head}: {renal}, {padua}; {sizes}{notes}"


def _show(ax, ct: np.ndarray, labels: np.ndarray, spacing_mm: tuple[float, float], origin: str) -> None:
    ax.imshow(ct, cmap="gray", vmin=DISPLAY_LEVEL_HU - DISPLAY_WIDTH_HU / 2, vmax=DISPLAY_LEVEL_HU + DISPLAY_WIDTH_HU / 2,
              aspect=spacing_mm[0] / spacing_mm[1], origin=origin, interpolation="nearest")
    for name in ("sinus fat", "collecting system", "hilum"):
        mask = labels == VIEW_LABELS[name]
        if mask.any():
            ax.contourf(mask, levels=[0.5, 1.5], colors=[STRUCTURE_COLOURS[name]], alpha=0.45)
    for name, width in (("kidney", 1.0), ("mass", 1.4)):
        mask = labels >= VIEW_LABELS[name] if name == "kidney" else labels == VIEW_LABELS[name]
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=STRUCTURE_COLOURS[name], linewidths=width)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_mass_view(ax_axial, ax_coronal, view: MassView) -> None:
    """Draw one mass's axial (E, A) and coronal (L) planes on two matplotlib axes."""
    _show(ax_axial, view.axial_ct, view.axial_labels, view.axial_spacing_mm, "upper")
    if view.axial_outline.any():
        ax_axial.contour(view.axial_outline, levels=[0.5], colors="white", linewidths=0.9, linestyles="dashed")
    anterior, centre, posterior = view.anterior_rows
    ax_axial.axhline(centre, color=LINE_COLOURS["kidney centroid (A)"], linewidth=0.8, linestyle=":")
    ax_axial.axhspan(anterior, posterior, color="white", alpha=0.15)
    ax_axial.set_title(f"axial z = {view.axial_z_mm:.0f} mm (E, A)", fontsize=7)
    _show(ax_coronal, view.coronal_ct, view.coronal_labels, view.coronal_spacing_mm, "lower")
    for row in view.polar_rows:
        ax_coronal.axhline(row, color=LINE_COLOURS["polar lines"], linewidth=1.0)
    ax_coronal.axhline(view.midline_row, color=LINE_COLOURS["midline"], linewidth=0.9, linestyle="--")
    for row in view.sinus_rows:
        ax_coronal.axhline(row, color=LINE_COLOURS["sinus lines"], linewidth=0.8, linestyle=":")
    ax_coronal.set_ylim(-0.5, view.coronal_ct.shape[0] - 0.5)
    ax_coronal.set_title(f"coronal y = {view.coronal_y_mm:.0f} mm (L)", fontsize=7)


def legend_handles() -> list:
    """Legend entries of :func:`draw_mass_view`'s colours and lines."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return ([Line2D([], [], color=STRUCTURE_COLOURS[n], label=n) for n in ("kidney", "mass")]
            + [Patch(color=STRUCTURE_COLOURS[n], alpha=0.6, label=n) for n in ("sinus fat", "collecting system", "hilum")]
            + [Line2D([], [], color="white", linestyle="--", label="outline without mass (E)"),
               Line2D([], [], color=LINE_COLOURS["polar lines"], label="polar lines (L)"),
               Line2D([], [], color=LINE_COLOURS["midline"], linestyle="--", label="renal midline (L)"),
               Line2D([], [], color=LINE_COLOURS["sinus lines"], linestyle=":", label="sinus lines (PADUA)"),
               Line2D([], [], color=LINE_COLOURS["kidney centroid (A)"], linestyle=":", label="kidney centroid +-10 mm (A)")])


def save_nephrometry_figure(path: str | os.PathLike, case_id: str, results: list[MassNephrometry]) -> Path:
    """One row per scored mass (axial, coronal, caption), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.view is not None]
    rows = max(len(shown), 1)
    fig = plt.figure(figsize=(10, 1.0 + 3.4 * rows))
    grid = fig.add_gridspec(rows, 3, width_ratios=[1, 1, 0.9], top=1 - 1.0 / (1.0 + 3.4 * rows), bottom=0.02,
                            left=0.02, right=0.98, wspace=0.08, hspace=0.25)
    for i, result in enumerate(shown):
        draw_mass_view(fig.add_subplot(grid[i, 0]), fig.add_subplot(grid[i, 1]), result.view)
        text = fig.add_subplot(grid[i, 2])
        text.axis("off")
        text.text(0.02, 0.5, "\n".join(textwrap.wrap(mass_caption(result), 40)), fontsize=8, va="center", ha="left")
    fig.legend(handles=legend_handles(), loc="upper right", fontsize=6.5, ncol=4, facecolor="#505050", labelcolor="white",
               framealpha=1.0)
    fig.suptitle(f"{case_id}: nephrometry of {len(results)} mass(es)", fontsize=9, x=0.02, y=0.995, ha="left", va="top")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)

