"""Write synthetic cohorts in the real KiTS23 and KiTS21 folder layouts.

KiTS23: ``<out_root>/dataset/case_XXXXX/{imaging,segmentation}.nii.gz`` + ``dataset/kits23.json``.
KiTS21: ``<out_root>/data/case_XXXXX/{imaging,aggregated_MAJ_seg}.nii.gz`` + ``data/kits.json``,
with KiTS21's subtype spellings. NIfTI files are written by SimpleITK (LPS geometry converted to a
proper RAS affine), atomically.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import SimpleITK as sitk

from renal_nnunet.io import InputError, read_label_map, write_image, write_json
from renal_nnunet.synthetic.paint import paint_ct
from renal_nnunet.synthetic.phantom import Phantom, make_phantom
from renal_nnunet.synthetic.randomised import make_randomised_phantom

logger = logging.getLogger(__name__)

Layout = Literal["kits23", "kits21"]
Generator = Literal["ellipsoid", "randomised"]
GENERATORS = {"ellipsoid": make_phantom, "randomised": make_randomised_phantom}
"""Phantom generators by name (see :func:`write_synthetic_kits`)."""
LAYOUT_FILES: dict[str, tuple[str, str, str]] = {
    "kits23": ("dataset", "segmentation.nii.gz", "kits23.json"),
    "kits21": ("data", "aggregated_MAJ_seg.nii.gz", "kits.json"),
}
"""layout -> (source folder, reference label file name, metadata file name)."""

KITS21_SPELLING: dict[str, str] = {
    "papillary_rcc": "papillary",
    "chromophobe_rcc": "chromophobe",
    "transitional_cell_carcinoma": "urothelial",
    "wilms_tumor": "wilms",
    "clear_cell_papillary": "clear_cell_papillary_rcc",
}
"""KiTS23 subtype spelling -> KiTS21 spelling (others are spelled alike)."""

SYNTHETIC_SUBTYPE_CYCLE: tuple[str, ...] = ("clear_cell_rcc", "angiomyolipoma", "papillary_rcc", "chromophobe_rcc")
"""Case i of a synthetic cohort gets subtype ``SYNTHETIC_SUBTYPE_CYCLE[i % 4]`` (so cases 0-3 are a
clear-cell, an AML, a papillary and a chromophobe patient); cysts (label 3) occur in every phantom
with two or more masses, since a phantom's masses alternate tumour and cyst."""

BENIGN_SUBTYPES = frozenset({"angiomyolipoma", "oncocytoma", "cyst"})


def _layout_files(layout: str) -> tuple[str, str, str]:
    if layout not in LAYOUT_FILES:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUT_FILES)}")
    return LAYOUT_FILES[layout]


def kits_subtype_spelling(subtype: str | None, layout: str) -> str | None:
    """The subtype as the given layout's metadata spells it (input in KiTS23 spelling)."""
    _layout_files(layout)
    return KITS21_SPELLING.get(subtype, subtype) if layout == "kits21" else subtype


def _write_case(src: Path, case_id: str, ct: sitk.Image, labels: sitk.Image, layout: str) -> None:
    _, label_name, _ = _layout_files(layout)
    case_dir = src / case_id
    write_image(sitk.Cast(ct, sitk.sitkInt16), case_dir / "imaging.nii.gz")
    write_image(sitk.Cast(labels, sitk.sitkUInt8), case_dir / label_name)


def _synthetic_metadata(case_id: str, phantom: Phantom, layout: str, rng: np.random.Generator) -> dict:
    """A KiTS-like clinical record for a phantom (sizes in cm, as KiTS gives them)."""
    tumour_diameters = [lesion.diameter_mm for lesion in phantom.lesions if lesion.kits_label == 2]
    largest_cm = round(max(tumour_diameters) / 10, 1) if tumour_diameters else None
    return {
        "case_id": case_id,
        "gender": str(rng.choice(["male", "female"])),
        "age_at_nephrectomy": int(rng.integers(30, 80)),
        "bmi": round(float(rng.uniform(19, 38)), 2),
        "radiographic_size": largest_cm,
        "pathologic_size": largest_cm,
        "malignant": None if phantom.subtype is None else phantom.subtype not in BENIGN_SUBTYPES,
        "tumor_histologic_subtype": kits_subtype_spelling(phantom.subtype, layout),
        "kidneys_in_view": bool(phantom.organ_centres_mm.keys() & {"kidney_left", "kidney_right"}),
        "synthetic_lesions": [
            {"kind": l.kind, "side": l.side, "kits_label": l.kits_label, "diameter_mm": round(l.diameter_mm, 2),
             "centre_mm": [round(c, 2) for c in l.centre_mm]}
            for l in phantom.lesions
        ],
    }


def write_synthetic_kits(
    out_root: str | os.PathLike,
    n_cases: int,
    layout: Layout = "kits23",
    seed: int = 0,
    mass_free_every: int | None = 5,
    generator: Generator = "ellipsoid",
    **phantom_kwargs,
) -> Path:
    """Write ``n_cases`` synthetic phantoms (``case_00000``...) in a KiTS layout.

    Args:
        out_root: folder to write into (created).
        n_cases: number of cases.
        layout: ``kits23`` or ``kits21``.
        seed: cohort seed; case i uses phantom seed ``seed * 100_000 + i``.
        mass_free_every: every n-th case (i % n == n - 1) has no mass and a null subtype, so
            cohorts include mass-free kidneys; None for none.
        generator: ``ellipsoid`` (:func:`~renal_nnunet.synthetic.phantom.make_phantom`: one
            contrast, one field of view) or ``randomised``
            (:func:`~renal_nnunet.synthetic.randomised.make_randomised_phantom`: domain-randomised
            torso, the demo's default); a case whose field of view holds no kidney gets a null subtype.
        **phantom_kwargs: passed to the generator (e.g. ``shape_zyx``, ``spacing_zyx_mm`` for
            ``ellipsoid``, ``inplane_voxels`` or ``kits_shapes`` for ``randomised``,
            ``masses_per_kidney``, or ``subtype`` to give every case the same subtype).

    Returns:
        The SRC folder (``out_root/dataset`` or ``out_root/data``) that a converter reads.

    Raises:
        ValueError: unknown layout or ``n_cases`` < 1.
    """
    folder, _, metadata_name = _layout_files(layout)
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; expected one of {sorted(GENERATORS)}")
    make = GENERATORS[generator]
    if n_cases < 1:
        raise ValueError(f"n_cases must be at least 1, got {n_cases}")
    src = Path(out_root) / folder
    records = []
    fixed_subtype = phantom_kwargs.pop("subtype", None)
    for index in range(n_cases):
        case_id = f"case_{index:05d}"
        case_seed = seed * 100_000 + index
        subtype = fixed_subtype or SYNTHETIC_SUBTYPE_CYCLE[index % len(SYNTHETIC_SUBTYPE_CYCLE)]
        if mass_free_every and index % mass_free_every == mass_free_every - 1:
            phantom = make(case_seed, subtype=subtype, **(phantom_kwargs | {"masses_per_kidney": (0, 0)}))
            phantom.subtype = None
        else:
            phantom = make(case_seed, subtype=subtype, **phantom_kwargs)
            if generator == "randomised" and not phantom.lesions:  # e.g. a chest-only scan
                phantom.subtype = None
        _write_case(src, case_id, phantom.ct, phantom.labels, layout)
        records.append(_synthetic_metadata(case_id, phantom, layout, np.random.default_rng(case_seed)))
    write_json(records, src / metadata_name)
    logger.info("wrote %d synthetic cases (%s layout) to %s", n_cases, layout, src)
    return src


def subsample_inplane(labels: sitk.Image, factor: int) -> sitk.Image:
    """Keep every ``factor``-th voxel along the two in-plane axes (nearest neighbour, exact).

    The in-plane axes are the two ITK axes least aligned with the patient's cranio-caudal axis.
    The kept voxels are the centres of each ``factor``-wide block, so spacing becomes
    ``factor`` x spacing and the origin moves to the first kept voxel: the physical extent and the
    affine stay right.
    """
    if factor < 1:
        raise ValueError(f"in-plane downsampling factor must be >= 1, got {factor}")
    if factor == 1:
        return labels
    cranio_caudal = np.abs(np.asarray(labels.GetDirection()).reshape(3, 3)[2])
    slice_axis = int(np.argmax(cranio_caudal))
    first = factor // 2
    index = tuple(slice(None) if axis == slice_axis else slice(first, None, factor) for axis in range(3))
    return labels[index]


def write_painted_kits(
    kits23_dataset: str | os.PathLike,
    out_root: str | os.PathLike,
    layout: Layout = "kits23",
    case_ids: Iterable[str] | None = None,
    seed: int = 0,
    inplane_downsample: int = 1,
) -> Path:
    """Paint synthetic CT onto real KiTS23 label maps and write them in a KiTS layout.

    Args:
        kits23_dataset: the real KiTS23 ``dataset/`` folder (``kits23.json`` + case folders).
        out_root: folder to write into.
        layout: ``kits23`` or ``kits21`` (metadata subtypes respelled for KiTS21).
        case_ids: cases to paint (default: every case in ``kits23.json``).
        seed: painting seed; case ``case_00017`` uses ``seed * 100_000 + 17``.
        inplane_downsample: keep every k-th voxel in-plane (see :func:`subsample_inplane`), for
            fast tests.

    Returns:
        The SRC folder (``out_root/dataset`` or ``out_root/data``).

    Raises:
        InputError: missing metadata or an unknown case id (nothing written); or, after every
            other case has been written, one error listing each unreadable or unusable label map.
    """
    folder, label_name, metadata_name = _layout_files(layout)
    dataset = Path(kits23_dataset)
    metadata_path = dataset / "kits23.json"
    try:
        metadata = {record["case_id"]: record for record in json.loads(metadata_path.read_text())}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(metadata_path, f"cannot read KiTS23 metadata: {err}") from None
    wanted = sorted(metadata) if case_ids is None else list(case_ids)
    missing = [case_id for case_id in wanted if case_id not in metadata]
    if missing:
        raise InputError(metadata_path, f"no metadata entry for {missing}")
    src = Path(out_root) / folder
    records, failures = [], []
    for case_id in wanted:
        label_path = dataset / case_id / "segmentation.nii.gz"
        try:
            labels = subsample_inplane(read_label_map(label_path, allowed_labels={0, 1, 2, 3}), inplane_downsample)
            subtype = metadata[case_id].get("tumor_histologic_subtype")
            ct = paint_ct(labels, subtype, seed * 100_000 + int(case_id.split("_")[-1]))
        except InputError as err:
            failures.append(str(err))
        except ValueError as err:
            failures.append(str(InputError(label_path, str(err))))
        else:
            _write_case(src, case_id, ct, labels, layout)
            records.append(dict(metadata[case_id], tumor_histologic_subtype=kits_subtype_spelling(subtype, layout)))
            logger.info("painted %s -> %s", case_id, src / case_id / label_name)
    write_json(records, src / metadata_name)
    if failures:
        for failure in failures:
            logger.error("not painted: %s", failure)
        raise InputError(None, f"{len(failures)} of {len(wanted)} cases could not be painted (the others were "
                               f"written to {src}): " + "; ".join(failures))
    return src
