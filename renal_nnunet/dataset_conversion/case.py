"""Converting one case: read, sides, sinus fill, grids, crops, lesions — all in memory.

:func:`build_case_outputs` returns everything a case contributes (images to write, sidecars,
lesion rows); writing and bookkeeping happen in :mod:`.convert`, so a failure leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.crops import lesion_crop
from renal_nnunet.anatomy.box import bounding_box_with_margin
from renal_nnunet.anatomy.geometry import GridSidecar, image_like
from renal_nnunet.anatomy.grid import labels_to_grid, prepare_grid_ct
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_NAMES, KITS_LABELS, ONE_STAGE_LABELS
from renal_nnunet.anatomy.lesion_classes import lesion_class
from renal_nnunet.anatomy.lesions import lesion_components, lesion_properties
from renal_nnunet.anatomy.sides import MASS_SIDE_REACH_VOXELS, mass_side, paper_kidney_sides
from renal_nnunet.dataset_conversion.sources import LABEL_NAMES, SEMANTIC_KITS_LABEL, SourceCase
from renal_nnunet.io import InputError, read_image, read_label_map

__all__ = ["CaseOutputs", "ReadCase", "read_case", "build_case_outputs"]


@dataclass
class ReadCase:
    """A case's CT and labels, checked. ``names`` maps each value of ``labels`` to a label name."""

    ct: sitk.Image
    labels: sitk.Image
    names: dict[int, str]

    def kits(self) -> np.ndarray:
        """The labels in KiTS convention (0 bg, 1 kidney, 2 tumour, 3 cyst), numpy (z, y, x)."""
        lookup = np.zeros(max(self.names) + 1, np.uint8)
        for value, name in self.names.items():
            lookup[value] = SEMANTIC_KITS_LABEL[name]
        return lookup[sitk.GetArrayViewFromImage(self.labels)]


@dataclass
class CaseOutputs:
    """What one case writes: ``images[(dataset_key, case_name)] = (image, label)``, sidecars, rows."""

    images: dict[tuple[str, str], tuple[sitk.Image, sitk.Image]] = field(default_factory=dict)
    sidecars: dict[tuple[str, str], GridSidecar] = field(default_factory=dict)
    crops: dict[str, sitk.Image] = field(default_factory=dict)
    lesion_rows: list[dict] = field(default_factory=list)


def read_case(case: SourceCase) -> ReadCase:
    """Read and check a case's CT and label map.

    Raises:
        InputError: unreadable/non-3D files, geometry mismatch, unknown label values, no kidney
            (unless the case says none is in view), or the case's recorded problem (e.g. no metadata entry).
    """
    if case.problem:
        raise InputError(case.problem_path, case.problem)
    unknown_names = sorted(set(case.label_values.values()) - set(LABEL_NAMES))
    if unknown_names:
        raise InputError(case.label_path, f"label names {unknown_names} are not among {list(LABEL_NAMES)}")
    ct = read_image(case.image_path)
    labels = read_label_map(case.label_path, set(case.label_values), reference=ct, reference_path=case.image_path)
    read = ReadCase(ct, labels, dict(case.label_values))
    if case.kidneys_in_view and not (read.kits() == KITS_LABELS["kidney"]).any():
        kidney_values = sorted(v for v, n in case.label_values.items() if n == "kidney")
        raise InputError(case.label_path, f"contains no kidney (label value {kidney_values})")
    return read


def build_case_outputs(case: SourceCase, grid: int, margin_mm: float, sinus_radius_mm: float) -> CaseOutputs:
    """Everything one case contributes to the four datasets and the lesion table.

    Raises:
        InputError: see :func:`read_case`.
    """
    read = read_case(case)
    ct, kits = read.ct, read.kits()
    try:
        sides = paper_kidney_sides(ct, kits, sinus_radius_mm)
    except InputError as err:
        raise InputError(case.image_path, err.problem) from None
    side_array = sitk.GetArrayViewFromImage(sides)
    mass = np.isin(kits, (KITS_LABELS["tumor"], KITS_LABELS["cyst"]))
    one_stage = np.zeros(kits.shape, np.uint8)  # uint8 throughout: np.where's int64 is 8 bytes a voxel
    one_stage[side_array > 0] = ONE_STAGE_LABELS["kidney"]
    one_stage[mass] = ONE_STAGE_LABELS["mass"]
    one_stage_image = image_like(one_stage, ct)
    mass_image = image_like(mass.astype(np.uint8), ct)

    out = CaseOutputs()
    grid_ct, sidecar = prepare_grid_ct(ct, grid)  # the body box; the labels take the same box
    out.images[("kidney", case.case_id)] = (grid_ct, labels_to_grid(sides, grid, sidecar.box)[0])
    out.images[("one_stage_grid", case.case_id)] = (grid_ct, labels_to_grid(one_stage_image, grid, sidecar.box)[0])
    out.images[("one_stage_native", case.case_id)] = (ct, one_stage_image)
    out.sidecars[("kidney", case.case_id)] = out.sidecars[("one_stage_grid", case.case_id)] = sidecar
    for side_value, side_name in KIDNEY_SIDE_NAMES.items():
        kidney = side_array == side_value
        if not kidney.any():
            continue
        box = bounding_box_with_margin(kidney, ct.GetSpacing(), margin_mm)
        crop_ct, crop_sidecar = prepare_grid_ct(ct, grid, box)
        name = f"{case.case_id}_{side_name}"
        out.images[("mass", name)] = (crop_ct, labels_to_grid(mass_image, grid, box)[0])
        out.sidecars[("mass", name)] = crop_sidecar
    _add_lesions(out, case, read, mass_image, side_array, grid)
    return out


def _add_lesions(out: CaseOutputs, case: SourceCase, read: ReadCase, mass_image: sitk.Image,
                 side_array: np.ndarray, grid: int) -> None:
    components = lesion_components(mass_image)
    component_array = sitk.GetArrayViewFromImage(components)
    label_array = sitk.GetArrayViewFromImage(read.labels)
    for lesion in lesion_properties(components):
        box = lesion.bbox.slices
        inside = component_array[box] == lesion.lesion_id
        source_values, counts = np.unique(label_array[box][inside], return_counts=True)
        names = [read.names[int(v)] for v in source_values]
        majority_name = names[int(np.argmax(counts))]
        reach = tuple(slice(max(b.start - MASS_SIDE_REACH_VOXELS, 0), b.stop + MASS_SIDE_REACH_VOXELS) for b in box)
        side = mass_side(component_array[reach] == lesion.lesion_id, side_array[reach])  # masses carry sides: never None
        lesion_class_name, evidence = lesion_class(majority_name, case.subtype)
        out.crops[f"{case.case_id}_{lesion.lesion_id}"] = lesion_crop(read.ct, components, grid, lesion.lesion_id)[0]
        out.lesion_rows.append({
            "case_id": case.case_id,
            "patient_id": case.patient_id,
            "side": KIDNEY_SIDE_NAMES[side],
            "lesion_id": lesion.lesion_id,
            "source_label": "+".join(sorted(set(names))),
            "lesion_class": lesion_class_name,
            "class_evidence": evidence,
            "subtype": case.subtype or "",
            "voxel_count": lesion.voxel_count,
            "volume_ml": round(lesion.volume_ml, 4),
            "average_diameter_mm": round(lesion.average_diameter_mm, 3),
            "centroid_x_mm": round(lesion.centroid_mm[0], 3),
            "centroid_y_mm": round(lesion.centroid_mm[1], 3),
            "centroid_z_mm": round(lesion.centroid_mm[2], 3),
            "bbox_start": " ".join(map(str, lesion.bbox.start)),
            "bbox_size": " ".join(map(str, lesion.bbox.size)),
        })
