"""What models trained on synthetic CT find on a real CT without labels: kidney volumes per side, how
much of each predicted kidney lies in a box drawn by eye around the true kidney, and the masses.

The project's one shared real CT (``../shared/realct/pancreas_ct_cb001``, see its README) has no
kidney labels, only the boxes :data:`REAL_CT_KIDNEY_BOXES`; a model that finds the kidneys puts
nearly all of its kidney voxels inside them, with volumes near the adult 100-250 ml per kidney.

The scan's README knows no renal mass, but its right kidney's upper pole holds a simple cyst: round,
sharply marginated, of water density (10 +/- 12 HU), about 85 ml, with a claw of enhancing parenchyma
around it (:data:`REAL_CT_CYST_SEED`). :func:`simple_cyst_outline` outlines it from the CT's own
voxels, so a model's masses are told apart: on that cyst (a true finding, which should be called
cystic) or anywhere else (a false mass).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, OUTPUT_LABELS, SIDES

__all__ = ["REAL_CT_CYST_SEED", "REAL_CT_KIDNEY_BOXES", "REAL_CT_SERIES", "KIDNEY_ML_RANGE", "SIMPLE_CYST_HU",
           "RealCtFindings", "RealCtMass", "real_ct_findings", "shared_real_ct_findings", "shared_kits23_dataset", "shared_real_ct",
           "simple_cyst_outline"]

REAL_CT_SERIES = "pancreas_ct_cb001"
"""Folder name of the shared real CT series under ``../shared/realct``."""

REAL_CT_KIDNEY_BOXES: dict[str, Box] = {
    "right": Box((150, 225, 42), (105, 115, 50)),
    "left": Box((285, 225, 42), (120, 115, 50)),
}
"""Kidney boxes of :data:`REAL_CT_SERIES` (its README): ITK (x, y, z) voxel ranges of the series as
SimpleITK reads it (512 x 512 x 134, LPS identity direction)."""

REAL_CT_CYST_SEED = (185, 295, 76)
"""A voxel (ITK x, y, z index, as :data:`REAL_CT_KIDNEY_BOXES`) inside the simple cyst at the right
kidney's upper pole of :data:`REAL_CT_SERIES`, found by looking at the images (the scan's README does
not mention it); the cyst lies inside the right kidney's box."""

SIMPLE_CYST_HU = (-15.0, 35.0)
"""HU range of a simple cyst's fluid after edge-preserving smoothing: water (0 HU), simple cysts up to
20 HU, and the residual noise; enhancing parenchyma and liver lie far above, fat far below."""

CYST_OPENING_MM = 2.5
"""Radius (mm; at least one voxel per axis) of the opening that cuts the cyst's fluid from thin
bridges of partial volume (fat against parenchyma passes through water's HU on its way)."""

KIDNEY_ML_RANGE = (100.0, 250.0)
"""Plausible volume of one adult kidney (ml), the transfer bound on the real CT."""

ON_CYST_SHARE = 0.5
"""A mass lies on the cyst when at least this share of its voxels lies inside the cyst's outline."""


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


def simple_cyst_outline(ct: sitk.Image, seed: tuple[int, int, int] = REAL_CT_CYST_SEED,
                        search_box: Box | None = None) -> sitk.Image:
    """The water-density region holding ``seed``: the outline of a simple cyst, from the CT's voxels.

    Within ``search_box`` the CT is smoothed by curvature flow (edges kept), thresholded to
    :data:`SIMPLE_CYST_HU`, opened by a ball of :data:`CYST_OPENING_MM` and grown from ``seed``.
    A reference measured this way is no expert mask; for a homogeneous cyst between enhancing
    parenchyma, liver and fat, it is where the fluid is.

    Args:
        ct: the CT in HU.
        seed: a voxel inside the cyst (ITK x, y, z index); default: the shared real CT's.
        search_box: the voxels (ITK x, y, z) the cyst is sought in; default: the shared real CT's right
            kidney box.

    Returns:
        A uint8 mask (1 = cyst) on ``ct``'s grid.

    Raises:
        ValueError: the seed is not of water density after the opening, or lies outside the box.
    """
    box = (REAL_CT_KIDNEY_BOXES["right"] if search_box is None else search_box).clipped_to(ct.GetSize())
    if not all(start <= v < stop for v, start, stop in zip(seed, box.start, box.stop)):
        raise ValueError(f"the cyst seed {seed} lies outside the search box {box}")
    crop = sitk.RegionOfInterest(ct, box.size, box.start)
    smooth = sitk.CurvatureFlow(sitk.Cast(crop, sitk.sitkFloat32), timeStep=0.125, numberOfIterations=5)
    water = sitk.BinaryThreshold(smooth, *SIMPLE_CYST_HU, insideValue=1, outsideValue=0)
    radius = [max(1, round(CYST_OPENING_MM / spacing)) for spacing in ct.GetSpacing()]
    water = sitk.BinaryMorphologicalOpening(water, radius, sitk.sitkBall)
    seed_in_crop = tuple(int(v) for v in np.subtract(seed, box.start))
    if water[seed_in_crop] != 1:
        raise ValueError(f"the cyst seed {seed} is not of water density ({SIMPLE_CYST_HU[0]:g} to "
                         f"{SIMPLE_CYST_HU[1]:g} HU after smoothing and opening)")
    cyst = sitk.ConnectedThreshold(water, seedList=[seed_in_crop], lower=1, upper=1)
    outline = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    outline.CopyInformation(ct)
    return sitk.Paste(outline, sitk.Cast(cyst, sitk.sitkUInt8), box.size, [0, 0, 0], box.start)


@dataclass(frozen=True)
class RealCtMass:
    """One mass component a model reported on the real CT.

    Attributes:
        name: output label name (``AML``, ``cystic``, ``solid``, ...).
        ml: volume, ml.
        cyst_share: fraction of its voxels inside the cyst's outline (0 without an outline).
    """

    name: str
    ml: float
    cyst_share: float

    @property
    def on_cyst(self) -> bool:
        """The mass is the known cyst (:data:`ON_CYST_SHARE` of it or more inside the outline)."""
        return self.cyst_share >= ON_CYST_SHARE

    def text(self) -> str:
        return f"{self.name} {self.ml:.1f} ml{' (on the cyst)' if self.on_cyst else ''}"


@dataclass(frozen=True)
class RealCtFindings:
    """What a pipeline segmentation shows on a real CT, per patient side.

    Attributes:
        kidney_ml: volume labelled as each kidney, ml (masses carry their own labels and are not in it).
        inside_box: fraction of each side's predicted kidney voxels inside that side's box (NaN when
            none is predicted).
        inside_box_all: the same over both sides together.
        masses: every mass component (side-less), with its share on the cyst.
        cyst_ml: volume of the cyst's outline, ml (None: no outline given).
        cyst_dice: Dice of the masses on the cyst (together) with its outline (0 when none is; None:
            no outline given).
    """

    kidney_ml: dict[str, float]
    inside_box: dict[str, float]
    inside_box_all: float
    masses: list[RealCtMass]
    cyst_ml: float | None = None
    cyst_dice: float | None = None

    @property
    def false_masses(self) -> list[RealCtMass]:
        """The masses that do not lie on the known cyst."""
        return [mass for mass in self.masses if not mass.on_cyst]

    def meets_bounds(self) -> bool:
        """At least 90 % of kidney voxels in the right boxes, each kidney 100-250 ml, no mass off the
        known cyst (with no outline given: no mass at all)."""
        low, high = KIDNEY_ML_RANGE
        return (self.inside_box_all >= 0.9 and all(low <= v <= high for v in self.kidney_ml.values())
                and not self.false_masses)

    def masses_text(self) -> str:
        """The masses as ``"cystic 39.5 ml (on the cyst), solid 2.1 ml"``, or ``"none"``."""
        return ", ".join(mass.text() for mass in self.masses) or "none"

    def cyst_text(self) -> str:
        """What became of the known cyst, e.g. ``"found as cystic (Dice 0.61 with its 85 ml outline)"``."""
        if self.cyst_ml is None:
            return "no cyst outline given"
        names = sorted({mass.name for mass in self.masses if mass.on_cyst})
        found = f"found as {' and '.join(names)}" if names else "not found"
        return f"{found} (Dice {self.cyst_dice:.2f} with its {self.cyst_ml:.0f} ml outline)"

    def rows(self) -> list[dict]:
        """One row per side, for a table."""
        return [{"side": side, "kidney_ml": round(self.kidney_ml[side], 1),
                 "inside_box": round(self.inside_box[side], 3)} for side in SIDES]


def real_ct_findings(seg: sitk.Image, boxes: dict[str, Box] | None = None,
                     cyst: sitk.Image | None = None) -> RealCtFindings:
    """Measure a pipeline segmentation (``<case>_seg.nii.gz`` labels) of a real CT against kidney boxes
    and the outline of a known cyst.

    Args:
        seg: the pipeline's output labels on the CT's own grid (1 right kidney, 2 left kidney,
            3-6 masses).
        boxes: side -> :class:`Box` of the CT's voxels holding that kidney (default
            :data:`REAL_CT_KIDNEY_BOXES`, for the shared real CT only).
        cyst: the known cyst's outline on the same grid (:func:`simple_cyst_outline`), or None.

    Raises:
        ValueError: a box reaches outside the image, or the cyst's outline has another size.
    """
    import cc3d

    boxes = REAL_CT_KIDNEY_BOXES if boxes is None else boxes
    array = sitk.GetArrayViewFromImage(seg)
    cyst_mask = np.zeros(array.shape, bool) if cyst is None else sitk.GetArrayViewFromImage(cyst) > 0
    if cyst_mask.shape != array.shape:
        raise ValueError(f"the cyst outline's size {cyst.GetSize()} differs from the segmentation's {seg.GetSize()}")
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
    masses, on_cyst = [], np.zeros(array.shape, bool)
    components, n = cc3d.connected_components(np.where(array > max(KIDNEY_SIDE_LABELS.values()), array, 0),
                                             connectivity=26, return_N=True)
    for component_id in range(1, n + 1):
        inside_component = components == component_id
        label = int(np.bincount(array[inside_component]).argmax())
        voxels = int(inside_component.sum())
        mass = RealCtMass(names.get(label, str(label)), voxels * voxel_ml,
                          int(cyst_mask[inside_component].sum()) / voxels)
        masses.append(mass)
        if mass.on_cyst:
            on_cyst |= inside_component
    cyst_ml = cyst_dice = None
    if cyst is not None:
        cyst_ml = int(cyst_mask.sum()) * voxel_ml
        both = int(on_cyst.sum()) + int(cyst_mask.sum())
        cyst_dice = 2 * int((on_cyst & cyst_mask).sum()) / both if both else float("nan")
    return RealCtFindings(kidney_ml, inside, inside_total / total if total else float("nan"), masses,
                          cyst_ml, cyst_dice)


def shared_real_ct_findings(series: str | os.PathLike, seg: sitk.Image) -> RealCtFindings:
    """:func:`real_ct_findings` of a segmentation of the shared real CT (``series``: its DICOM folder),
    with its kidney boxes and the outline of its cyst drawn from the series' own voxels."""
    from renal_nnunet.io import read_series_or_image

    return real_ct_findings(seg, REAL_CT_KIDNEY_BOXES, simple_cyst_outline(read_series_or_image(series)))
