"""What models trained on synthetic CT find on a real CT without labels: kidney volumes per side, how
much of each predicted kidney lies in a box drawn by eye around the true kidney, and the masses.

The project's one shared real CT (``../shared/realct/pancreas_ct_cb001``, see its README) has no
kidney labels, only the boxes :data:`REAL_CT_KIDNEY_BOXES`; a model that finds the kidneys puts
nearly all of its kidney voxels inside them, with volumes near the adult 100-250 ml per kidney, and
reports no renal mass there (none is known).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, OUTPUT_LABELS, SIDES

__all__ = ["REAL_CT_KIDNEY_BOXES", "REAL_CT_SERIES", "KIDNEY_ML_RANGE", "RealCtFindings", "real_ct_findings",
           "shared_kits23_dataset", "shared_real_ct"]

REAL_CT_SERIES = "pancreas_ct_cb001"
"""Folder name of the shared real CT series under ``../shared/realct``."""

REAL_CT_KIDNEY_BOXES: dict[str, Box] = {
    "right": Box((150, 225, 42), (105, 115, 50)),
    "left": Box((285, 225, 42), (120, 115, 50)),
}
"""Kidney boxes of :data:`REAL_CT_SERIES` (its README): ITK (x, y, z) voxel ranges of the series as
SimpleITK reads it (512 x 512 x 134, LPS identity direction)."""

KIDNEY_ML_RANGE = (100.0, 250.0)
"""Plausible volume of one adult kidney (ml), the transfer bound on the real CT."""


def _shared_folder(environment_variable: str, shared_name: str, inside: str, marker: str,
                   repo_root: str | os.PathLike | None) -> Path | None:
    """``<root>/<inside>`` holding ``marker``, for the first root of ``$environment_variable`` and
    ``../shared/<shared_name>`` beside the repository, the installed package or the working directory."""
    roots = [os.environ.get(environment_variable)]
    roots += [str(Path(base).resolve().parent / "shared" / shared_name)
              for base in (repo_root, Path(__file__).resolve().parents[2], Path.cwd()) if base is not None]
    for root in roots:
        if root and (Path(root) / inside / marker).exists():
            return Path(root) / inside
    return None


def shared_real_ct(repo_root: str | os.PathLike | None = None) -> Path | None:
    """The shared real CT series folder, if this machine has it: ``$RENAL_REALCT_DIR/<series>`` or
    ``../shared/realct/<series>`` beside the repository (or beside the working directory)."""
    return _shared_folder("RENAL_REALCT_DIR", "realct", REAL_CT_SERIES, "", repo_root)


def shared_kits23_dataset(repo_root: str | os.PathLike | None = None) -> Path | None:
    """The shared KiTS23 label maps' ``dataset/`` folder, if this machine has it:
    ``$RENAL_KITS23_DIR/dataset`` or ``../shared/kits23/dataset`` beside the repository (or beside
    the working directory)."""
    return _shared_folder("RENAL_KITS23_DIR", "kits23", "dataset", "kits23.json", repo_root)


@dataclass(frozen=True)
class RealCtFindings:
    """What a pipeline segmentation shows on a real CT, per patient side.

    Attributes:
        kidney_ml: volume labelled as each kidney, ml (masses carry their own labels and are not in it).
        inside_box: fraction of each side's predicted kidney voxels inside that side's box (NaN when
            none is predicted).
        inside_box_all: the same over both sides together.
        masses: (side-less) mass components: output label name and volume (ml) of each.
    """

    kidney_ml: dict[str, float]
    inside_box: dict[str, float]
    inside_box_all: float
    masses: list[tuple[str, float]]

    def meets_bounds(self) -> bool:
        """At least 90 % of kidney voxels in the right boxes, each kidney 100-250 ml, no mass."""
        low, high = KIDNEY_ML_RANGE
        return (self.inside_box_all >= 0.9 and all(low <= v <= high for v in self.kidney_ml.values())
                and not self.masses)

    def masses_text(self) -> str:
        """The masses as ``"solid 17.7 ml, cystic 2.1 ml"``, or ``"none"``."""
        return ", ".join(f"{name} {ml:.1f} ml" for name, ml in self.masses) or "none"

    def rows(self) -> list[dict]:
        """One row per side, for a table."""
        return [{"side": side, "kidney_ml": round(self.kidney_ml[side], 1),
                 "inside_box": round(self.inside_box[side], 3)} for side in SIDES]


def real_ct_findings(seg: sitk.Image, boxes: dict[str, Box] | None = None) -> RealCtFindings:
    """Measure a pipeline segmentation (``<case>_seg.nii.gz`` labels) of a real CT against kidney boxes.

    Args:
        seg: the pipeline's output labels on the CT's own grid (1 right kidney, 2 left kidney,
            3-6 masses).
        boxes: side -> :class:`Box` of the CT's voxels holding that kidney (default
            :data:`REAL_CT_KIDNEY_BOXES`, for the shared real CT only).

    Raises:
        ValueError: a box reaches outside the image.
    """
    import cc3d

    boxes = REAL_CT_KIDNEY_BOXES if boxes is None else boxes
    array = sitk.GetArrayViewFromImage(seg)
    voxel_ml = float(np.prod(seg.GetSpacing())) / 1000.0
    kidney_ml, inside, inside_total, total = {}, {}, 0, 0
    for side in SIDES:
        box = boxes[side]
        if any(stop > size for stop, size in zip(box.stop, seg.GetSize())):
            raise ValueError(f"the {side} kidney box {box} reaches outside the image of size {seg.GetSize()}")
        mask = array == KIDNEY_SIDE_LABELS[side]
        count = int(mask.sum())
        in_box = int(mask[box.slices].sum())
        kidney_ml[side] = count * voxel_ml
        inside[side] = in_box / count if count else float("nan")
        inside_total += in_box
        total += count
    names = {value: name for name, value in OUTPUT_LABELS.items() if value > max(KIDNEY_SIDE_LABELS.values())}
    masses = []
    components, n = cc3d.connected_components(np.where(array > max(KIDNEY_SIDE_LABELS.values()), array, 0),
                                             connectivity=26, return_N=True)
    for component_id in range(1, n + 1):
        inside_component = components == component_id
        label = int(np.bincount(array[inside_component]).argmax())
        masses.append((names.get(label, str(label)), float(inside_component.sum()) * voxel_ml))
    return RealCtFindings(kidney_ml, inside, inside_total / total if total else float("nan"), masses)
