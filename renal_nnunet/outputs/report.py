"""The per-case report figure (like the paper's Fig. 6 and Suppl. Fig. 3).

Top: an axial and a coronal slice through the largest mass (or the kidneys' centre) with kidney and
mass outlines. Middle: one zoomed axial panel per mass (up to :data:`MAX_LESION_PANELS`) with its
Grad-CAM, then one row per mass with nephrometry: the axial and coronal planes its R.E.N.A.L. and
PADUA were read from (``renal_nnunet.nephrometry.figure``) and a line with its scores. Bottom: the
lesion table.

Images are shown in radiological convention: the volume is reoriented to LPS first, so columns run
from the patient's right (screen left) to the patient's left and axial rows from anterior (top) to
posterior; coronal rows run from superior (top) to inferior.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from renal_nnunet.anatomy.labels import OUTPUT_LABEL_COLOURS, OUTPUT_LABEL_NAMES, OUTPUT_LABELS  # noqa: E402
from renal_nnunet.io import atomic_path  # noqa: E402
from renal_nnunet.nephrometry.figure import draw_mass_view, legend_handles, mass_caption  # noqa: E402
from renal_nnunet.outputs.records import LesionRecord  # noqa: E402

__all__ = ["MAX_LESION_PANELS", "note_lines", "save_case_report"]

MAX_LESION_PANELS = 6
DISPLAY_LEVEL_HU, DISPLAY_WIDTH_HU = 40.0, 400.0  # soft-tissue display window
LESION_PANEL_HALF_WIDTH_MM = 30.0
NOTE_WIDTH_CHARACTERS = 72
"""Notes under the title wrap at this many characters: the left 60 % of the 10-inch figure, beside
the legend."""
LABEL_COLOURS: dict[str, tuple[float, float, float]] = {
    name: tuple(c / 255.0 for c in rgb) for name, rgb in OUTPUT_LABEL_COLOURS.items()}
"""Matplotlib colours of the output labels: the viewers' colours (``OUTPUT_LABEL_COLOURS``)."""


def _lps_array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))


def _show_ct(ax, ct_slice: np.ndarray, aspect: float, origin: str) -> None:
    low, high = DISPLAY_LEVEL_HU - DISPLAY_WIDTH_HU / 2, DISPLAY_LEVEL_HU + DISPLAY_WIDTH_HU / 2
    ax.imshow(ct_slice, cmap="gray", vmin=low, vmax=high, aspect=aspect, origin=origin, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _outline(ax, seg_slice: np.ndarray) -> None:
    # Contours without extent/origin sit at integer pixel centres, as imshow draws them for either origin.
    for name, value in OUTPUT_LABELS.items():
        if value and (seg_slice == value).any():
            ax.contour(seg_slice == value, levels=[0.5], colors=LABEL_COLOURS[name], linewidths=0.8)


def _focus_index(seg: np.ndarray, records: list[LesionRecord], ct_lps: sitk.Image) -> np.ndarray:
    """(z, y, x) voxel of the largest lesion's centroid, else of the kidneys' centre, else the middle."""
    if records:
        largest = max(records, key=lambda r: r.volume_ml)
        index_xyz = ct_lps.TransformPhysicalPointToContinuousIndex(largest.centroid_mm)
        return np.clip(np.round(index_xyz[::-1]).astype(int), 0, np.asarray(seg.shape) - 1)
    if seg.any():
        return np.round(np.argwhere(seg > 0).mean(axis=0)).astype(int)
    return np.asarray(seg.shape) // 2


def _cam_window(cam: sitk.Image, ct_lps: sitk.Image, z: int, rows: slice, cols: slice) -> np.ndarray:
    """A Grad-CAM held on a box of the CT's grid, sampled on one axial window of the LPS CT
    (nearest: the window's voxels are the CAM's own; 0 outside its box). No full-size copy of
    the map is made, which on a 700-slice CT would be 0.8 GB per lesion."""
    window = sitk.RegionOfInterest(ct_lps, [int(cols.stop - cols.start), int(rows.stop - rows.start), 1],
                                   [int(cols.start), int(rows.start), int(z)])
    return sitk.GetArrayFromImage(sitk.Resample(cam, window, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0,
                                                sitk.sitkFloat32))[0]


def _lesion_panel(ax, ct: np.ndarray, seg: np.ndarray, cam: sitk.Image | None, record: LesionRecord,
                  ct_lps: sitk.Image) -> None:
    z, y, x = np.clip(np.round(ct_lps.TransformPhysicalPointToContinuousIndex(record.centroid_mm)[::-1]).astype(int),
                      0, np.asarray(ct.shape) - 1)
    spacing_x, spacing_y = ct_lps.GetSpacing()[:2]
    half_x = int(math.ceil(max(LESION_PANEL_HALF_WIDTH_MM, record.average_diameter_mm) / spacing_x))
    half_y = int(math.ceil(max(LESION_PANEL_HALF_WIDTH_MM, record.average_diameter_mm) / spacing_y))
    rows = slice(max(0, y - half_y), min(y + half_y + 1, ct.shape[1]))
    cols = slice(max(0, x - half_x), min(x + half_x + 1, ct.shape[2]))
    _show_ct(ax, ct[z, rows, cols], spacing_y / spacing_x, "upper")
    if cam is not None:
        ax.imshow(np.ma.masked_less(_cam_window(cam, ct_lps, z, rows, cols), 0.05), cmap="jet", alpha=0.45, vmin=0, vmax=1,
                  aspect=spacing_y / spacing_x, interpolation="bilinear")
    ax.contour(seg[z, rows, cols] == record.output_label, levels=[0.5], colors="white", linewidths=0.8)
    detail = "" if math.isnan(record.probability_calibrated) else f" p={record.probability_calibrated:.2f}"
    detail += " (indeterminate)" if record.indeterminate else ""
    ax.set_title(f"#{record.lesion_id} {record.side}: {record.lesion_class}{detail}\n"
                 f"{record.average_diameter_mm:.1f} mm, {record.volume_ml:.2f} ml", fontsize=8)


def _table(ax, records: list[LesionRecord]) -> None:
    ax.axis("off")
    if not records:
        ax.text(0.5, 0.5, "no renal masses found", ha="center", va="center", fontsize=10)
        return
    header = ["#", "side", "class", "diam. mm", "vol. ml", "mean HU", "p(class)", "p calibr.", "fold agr.",
              "mass spread", "R.E.N.A.L.", "PADUA"]
    cells = []
    for r in records:
        p = r.probabilities.get(r.lesion_class)
        flags = ", ".join(f for f in ("indeterminate" if r.indeterminate else "", r.plausibility) if f)
        cells.append([r.lesion_id, r.side, r.lesion_class + (f" ({flags})" if flags else ""),
                      f"{r.average_diameter_mm:.1f}", f"{r.volume_ml:.2f}",
                      f"{r.mean_hu:.0f}", "-" if p is None else f"{p:.2f}",
                      "-" if math.isnan(r.probability_calibrated) else f"{r.probability_calibrated:.2f}",
                      "-" if math.isnan(r.fold_agreement) else f"{r.fold_agreement:.2f}",
                      "-" if math.isnan(r.mass_prob_spread) else f"{r.mass_prob_spread:.3f}",
                      *_nephrometry_codes(r)])
    table = ax.table(cellText=cells, colLabels=header, loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(col=list(range(len(header))))  # room for "cystic (indeterminate, ...)"


def _nephrometry_codes(record: LesionRecord) -> tuple[str, str]:
    """The R.E.N.A.L. and PADUA codes of a lesion-table row ("-" where not scored)."""
    row = record.nephrometry.to_row() if record.nephrometry is not None else {}
    return row.get("renal_code") or "-", row.get("padua_code") or "-"


def _nephrometry_row(fig, grid_row, record: LesionRecord, legend: bool) -> None:
    """One mass's nephrometry: the axial and coronal planes its scores were read from, and its line."""
    draw_mass_view(fig.add_subplot(grid_row[0]), fig.add_subplot(grid_row[1]), record.nephrometry.view)
    text = fig.add_subplot(grid_row[2])
    text.axis("off")
    text.text(0.0, 1.0, "\n".join(textwrap.wrap(mass_caption(record.nephrometry), 44)), fontsize=7, va="top")
    if legend:
        text.legend(handles=legend_handles(), loc="lower left", fontsize=5.5, ncol=2, facecolor="#505050",
                    labelcolor="white", framealpha=1.0)


def note_lines(notes: list[str]) -> list[str]:
    """The report's notes wrapped at :data:`NOTE_WIDTH_CHARACTERS` (long messages stay on the page).

    >>> [len(line) for line in note_lines(["a " * 60])]
    [71, 47]
    """
    return [line for note in notes for line in textwrap.wrap(note, NOTE_WIDTH_CHARACTERS)]


def save_case_report(
    path: str | os.PathLike,
    case_id: str,
    ct: sitk.Image,
    seg: sitk.Image,
    records: list[LesionRecord],
    cams: dict[int, sitk.Image] | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Draw the report PNG for one case and write it atomically.

    Args:
        path: output PNG.
        case_id: shown in the title.
        ct: input CT (HU); seg: the pipeline's output labels on the same grid.
        records: the lesion table rows.
        cams: Grad-CAM images by lesion id (on ``ct``'s grid or a box of it), optional.
        notes: warnings to print under the title (e.g. kidney at the image border).
    """
    ct_lps = sitk.DICOMOrient(ct, "LPS")
    ct_array, seg_array = sitk.GetArrayFromImage(ct_lps), _lps_array(seg)
    spacing_x, spacing_y, spacing_z = ct_lps.GetSpacing()
    z, y, _ = _focus_index(seg_array, records, ct_lps)
    panels = records[:MAX_LESION_PANELS]
    lesion_rows = math.ceil(len(panels) / 3)
    scored = [r for r in panels if r.nephrometry is not None and r.nephrometry.view is not None]
    lines = note_lines(notes or [])
    title_inches = 0.6 + 0.17 * len(lines)
    height = 5 + 2.8 * lesion_rows + 3.2 * len(scored) + 0.3 * max(len(records), 1) + title_inches
    fig = plt.figure(figsize=(10, height))
    grid = fig.add_gridspec(2 + lesion_rows + len(scored), 3, top=1 - title_inches / height,
                            height_ratios=[4] + [2.6] * lesion_rows + [3.0] * len(scored) + [0.6 + 0.3 * len(records)])
    axial, coronal = fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2])
    _show_ct(axial, ct_array[z], spacing_y / spacing_x, "upper")
    _outline(axial, seg_array[z])
    axial.set_title(f"axial (slice {z}); patient right on the left", fontsize=9)
    _show_ct(coronal, ct_array[:, y, :], spacing_z / spacing_x, "lower")
    _outline(coronal, seg_array[:, y, :])
    coronal.set_title("coronal", fontsize=9)
    for i, record in enumerate(panels):
        cam = cams.get(record.lesion_id) if cams else None
        _lesion_panel(fig.add_subplot(grid[1 + i // 3, i % 3]), ct_array, seg_array,
                      cam, record, ct_lps)
    for i, record in enumerate(scored):
        _nephrometry_row(fig, [grid[1 + lesion_rows + i, column] for column in range(3)], record, legend=i == 0)
    _table(fig.add_subplot(grid[-1, :]), records)
    handles = [Line2D([], [], color=c, label=OUTPUT_LABEL_NAMES[n]) for n, c in LABEL_COLOURS.items()]
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=3)
    title = f"{case_id}: {len(records)} renal mass(es)"
    if lines:
        title += "\n" + "\n".join(lines)
    fig.suptitle(title, fontsize=9, x=0.02, y=0.995, ha="left", va="top")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
