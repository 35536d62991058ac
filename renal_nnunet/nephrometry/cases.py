"""Nephrometry of reference or pipeline label maps: ``renal-nnunet nephrometry``.

A label map is read in one of :data:`SEG_FORMATS`:

* ``kits``: 0 background, 1 kidney, 2 tumour, 3 cyst. A mass is a 26-connected component of
  tumour or cyst; its ``lesion_class`` says which labels it holds (``tumor``, ``cyst`` or
  ``tumor+cyst``). The whole kidney is the paper's (``kits_anatomy(kidney="paper")``: the renal
  sinus filled, the masses included; sides from the midline between the kidneys, as ``evaluate``
  reads KiTS references, so both name a mass's side alike).
* ``pipeline``: ``<case>_seg.nii.gz`` of ``predict`` (1 right, 2 left kidney, 3-6 masses); a mass
  is a 26-connected component of labels 3-6 and its class its majority label.

Every mass is scored (researchers compare with their own readers); a mass holding only cyst
labels (or classed cystic) carries the note that R.E.N.A.L. and PADUA are defined for solid masses.
Outputs: ``nephrometry.csv`` and ``nephrometry.json`` (one row per mass: ``case_id``,
``lesion_id``, ``side``, ``lesion_class``, ``volume_ml``, the centroid in LPS mm, then
:data:`~renal_nnunet.nephrometry.score.NEPHROMETRY_COLUMNS`) and, with figures,
``<case>_nephrometry.png``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.label_maps import image_centre_x_mm, kits_anatomy, pipeline_anatomy
from renal_nnunet.anatomy.labels import KITS_LABELS, LABEL_MAP_FORMATS, OUTPUT_LABELS
from renal_nnunet.anatomy.lesions import lesion_components, lesion_properties
from renal_nnunet.anatomy.sinus import SINUS_CLOSING_RADIUS_MM, fill_margin_voxels
from renal_nnunet.io import InputError, atomic_path, case_id_from_path, read_image, read_label_map, write_json
from renal_nnunet.nephrometry.score import NEPHROMETRY_COLUMNS, SOLID_ONLY_NOTE, MassNephrometry, nephrometry_dtypes, score_masses

__all__ = ["SEG_FORMATS", "CASE_COLUMNS", "CaseNephrometry", "case_nephrometry", "find_inputs", "write_nephrometry",
           "score_label_maps"]

log = logging.getLogger(__name__)

SEG_FORMATS: tuple[str, ...] = LABEL_MAP_FORMATS
CASE_COLUMNS: tuple[str, ...] = ("case_id", "lesion_id", "side", "lesion_class", "volume_ml",
                                 "centroid_x_mm", "centroid_y_mm", "centroid_z_mm")
"""The columns before the nephrometry columns in ``nephrometry.csv``."""
_CLASS_OF_OUTPUT_LABEL = {value: name for name, value in OUTPUT_LABELS.items()}
_CYSTIC_CLASSES = ("cyst", "cystic")


@dataclass(frozen=True)
class CaseNephrometry:
    """One case's masses: their table rows (:data:`CASE_COLUMNS` + nephrometry columns) and results."""

    case_id: str
    rows: list[dict]
    results: list[MassNephrometry]


def case_nephrometry(ct: sitk.Image, seg: sitk.Image, seg_format: str, case_id: str = "case",
                     views: bool = False) -> CaseNephrometry:
    """Score every mass of a label map (module docstring) on its CT.

    Raises:
        ValueError: an unknown ``seg_format``.
        InputError: the label map and the CT do not share one grid.
    """
    if seg_format not in SEG_FORMATS:
        raise ValueError(f"seg_format must be one of {list(SEG_FORMATS)}, got {seg_format!r}")
    ct_crop, seg_crop = _crop_to_labels(ct, seg)
    if seg_format == "kits":
        anatomy = kits_anatomy(seg_crop, centre_x_mm=image_centre_x_mm(seg), kidney="paper")
    else:
        anatomy = pipeline_anatomy(seg_crop, 26, image_centre_x_mm(seg))
    components = lesion_components(image_like(anatomy.mass.astype(np.uint8), seg_crop))
    results = score_masses(ct_crop, image_like(anatomy.side, seg_crop), components, views=views)
    labels, ids = sitk.GetArrayViewFromImage(seg_crop), sitk.GetArrayViewFromImage(components)
    rows, kept = [], []
    for lesion, result in zip(lesion_properties(components), results):
        inside = ids[lesion.bbox.slices] == lesion.lesion_id
        lesion_class = _lesion_class(labels[lesion.bbox.slices][inside], seg_format)
        if lesion_class in _CYSTIC_CLASSES:
            result = replace(result, notes=(*result.notes, f"cyst: {SOLID_ONLY_NOTE}"))
        kept.append(result)
        rows.append({"case_id": case_id, "lesion_id": lesion.lesion_id, "side": result.side, "lesion_class": lesion_class,
                     "volume_ml": lesion.volume_ml,
                     **dict(zip(("centroid_x_mm", "centroid_y_mm", "centroid_z_mm"), lesion.centroid_mm)),
                     **result.to_row()})
    return CaseNephrometry(case_id, rows, kept)


def _lesion_class(labels: np.ndarray, seg_format: str) -> str:
    if seg_format == "kits":
        held = [name for name in ("tumor", "cyst") if (labels == KITS_LABELS[name]).any()]
        return "+".join(held)
    return _CLASS_OF_OUTPUT_LABEL[int(np.bincount(labels).argmax())]


def _crop_to_labels(ct: sitk.Image, seg: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """Both images cut to the labelled voxels plus the sinus fill's reach (which then fills as on
    the whole image, see ``kits_anatomy``); a long CT's nephrometry works on its kidneys only."""
    array = sitk.GetArrayViewFromImage(seg)
    box = Box.of_nonzero(array)
    if box.is_empty:
        return ct, seg
    margin = fill_margin_voxels(np.asarray(seg.GetSpacing()[::-1]), SINUS_CLOSING_RADIUS_MM)[::-1]
    box = box.grow(margin).clipped_to(seg.GetSize())
    return (sitk.RegionOfInterest(ct, box.size, box.start), sitk.RegionOfInterest(seg, box.size, box.start))


def _kits_case_id(path: Path) -> str:
    """A KiTS case folder's name for its ``imaging.nii.gz``, else the file's case id."""
    return path.parent.name if path.name.startswith("imaging.") else case_id_from_path(path)


def find_inputs(ct: str | os.PathLike, seg: str | os.PathLike | None) -> list[tuple[str, Path, Path]]:
    """Pair CTs with label maps: ``(case_id, ct_path, seg_path)``.

    Accepted: a CT file and a label file; a KiTS ``dataset/`` folder of case folders
    (``imaging.nii.gz`` + ``segmentation.nii.gz``, ``seg`` optional: another folder of case
    folders, or of ``<case>.nii.gz`` / ``<case>_seg.nii.gz``); or a folder of CTs
    (``<case>[_0000].nii.gz``) with a folder of label maps named like that.

    Raises:
        InputError: nothing to pair, or a CT without a label map.
    """
    ct, seg = Path(ct), None if seg is None else Path(seg)
    if ct.is_file():
        if seg is None or not seg.is_file():
            raise InputError(seg or ct, "a CT file needs a label-map file (-s/--seg)")
        return [(_kits_case_id(ct), ct, seg)]
    if not ct.is_dir():
        raise InputError(ct, "is neither a CT file nor a folder")
    cts = {p.name: p / "imaging.nii.gz" for p in sorted(ct.iterdir()) if (p / "imaging.nii.gz").is_file()}
    if not cts:
        cts = {case_id_from_path(p): p for p in sorted(ct.iterdir()) if p.is_file() and p.name.endswith((".nii.gz", ".nii", ".mha", ".nrrd"))}
    if not cts:
        raise InputError(ct, "holds no CT (KiTS case folders with imaging.nii.gz, or image files)")
    pairs, missing = [], []
    for case_id, ct_path in cts.items():
        candidates = ([ct_path.parent / "segmentation.nii.gz"] if seg is None else
                      [seg / case_id / "segmentation.nii.gz", seg / f"{case_id}_seg.nii.gz", seg / f"{case_id}.nii.gz"])
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            missing.append(case_id)
        else:
            pairs.append((case_id, ct_path, found))
    if missing:
        raise InputError(seg or ct, f"no label map for case(s) {missing}")
    return pairs


def write_nephrometry(inputs: list[tuple[str, Path, Path]], out_dir: str | os.PathLike, seg_format: str,
                      figures: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Score every case and write ``nephrometry.csv``/``.json`` (and the figures) into ``out_dir``.

    A case that fails is reported (returned with its reason, logged) and the others go on.

    Returns:
        The table (one row per mass) and one line per failed case.
    """
    from renal_nnunet.nephrometry.figure import save_nephrometry_figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    for case_id, ct_path, seg_path in inputs:
        try:
            ct = read_image(ct_path)
            seg = read_label_map(seg_path, set(KITS_LABELS.values()) if seg_format == "kits" else set(OUTPUT_LABELS.values()),
                                 reference=ct, reference_path=ct_path)
            case = case_nephrometry(ct, seg, seg_format, case_id, views=figures)
        except (InputError, ValueError, RuntimeError, OSError) as err:
            log.error("case %s not scored: %s", case_id, err)
            failures.append(f"{case_id}: {err}")
            continue
        rows += case.rows
        if figures and case.results:
            save_nephrometry_figure(out_dir / f"{case_id}_nephrometry.png", case_id, case.results)
    table = nephrometry_dtypes(pd.DataFrame(rows, columns=[*CASE_COLUMNS, *NEPHROMETRY_COLUMNS]))
    with atomic_path(out_dir / "nephrometry.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_json({"seg_format": seg_format, "failures": failures,
                "masses": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
                           for row in rows]}, out_dir / "nephrometry.json")
    return table, failures


def score_label_maps(ct: str | os.PathLike, seg: str | os.PathLike | None, out_dir: str | os.PathLike,
                     seg_format: str = "kits", figures: bool = True) -> tuple[pd.DataFrame, list[str], int]:
    """``renal-nnunet nephrometry``: :func:`find_inputs` then :func:`write_nephrometry`.

    Returns:
        The table, the failed cases and how many cases were given.
    """
    inputs = find_inputs(ct, seg)
    return (*write_nephrometry(inputs, out_dir, seg_format, figures), len(inputs))
