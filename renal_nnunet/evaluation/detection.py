"""Lesion detection at connected-component level, the paper's definition (its section 2.7, Fig. 4).

* a reference component overlapped by at least one predicted voxel is a true positive (TP),
  otherwise a false negative (FN);
* a predicted component that overlaps no reference component is a false positive (FP).

So one predicted component covering two reference lesions gives two TPs and no FP, and a predicted
component touching a reference lesion is never an FP however far it spreads. Precision is
TP / (TP + FP) and recall TP / (TP + FN), with TP counted in reference lesions as in the paper's
Table 2. Components are cc3d components (``connectivity`` 6, 18 or 26); components smaller than the
size filter are dropped from both masks before matching. Sizes use
:func:`renal_nnunet.anatomy.lesions.average_diameter_mm`'s definition.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import cc3d
import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.lesions import average_diameter_mm, lesion_components, lesion_properties
from renal_nnunet.evaluation.crop import union_box
from renal_nnunet.evaluation.surface import segmentation_metrics

__all__ = ["DetectionConfig", "LESION_COLUMNS", "label_lesions", "match_lesions", "detect_lesions", "detection_scores",
           "joined_and_split"]


@dataclass(frozen=True)
class DetectionConfig:
    """How lesions are found.

    Attributes:
        connectivity: cc3d neighbourhood (6, 18 or 26 voxels).
        min_size_voxels: components with fewer voxels are ignored (both masks).
        min_volume_mm3: components with a smaller volume (mm^3) are ignored (both masks).
    """

    connectivity: int = 26
    min_size_voxels: int = 0
    min_volume_mm3: float = 0.0

    def __post_init__(self):
        if self.connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {self.connectivity}")
        if self.min_size_voxels < 0 or self.min_volume_mm3 < 0:
            raise ValueError("size filters must be non-negative")


LESION_COLUMNS: tuple[str, ...] = (
    "status", "ref_id", "pred_ids", "dice", "hd_mm", "hd95_mm", "assd_mm",
    "ref_volume_ml", "pred_volume_ml", "ref_average_diameter_mm", "pred_average_diameter_mm",
    "ref_centroid_x_mm", "ref_centroid_y_mm", "ref_centroid_z_mm",
    "pred_centroid_x_mm", "pred_centroid_y_mm", "pred_centroid_z_mm",
)
"""Columns of :func:`match_lesions`' table. ``pred_ids`` joins the matched ids with ``;``."""


def label_lesions(mask: sitk.Image, config: DetectionConfig = DetectionConfig()) -> sitk.Image:
    """Connected components of a mask (ids 1..N by decreasing volume) after the size filter."""
    array = sitk.GetArrayViewFromImage(mask) != 0
    voxel_mm3 = float(np.prod(mask.GetSpacing()))
    threshold = max(config.min_size_voxels, math.ceil(config.min_volume_mm3 / voxel_mm3 - 1e-9))
    if threshold > 0:
        array = cc3d.dust(array, threshold=threshold, connectivity=config.connectivity)
    return lesion_components(image_like(array.astype(np.uint8), mask), connectivity=config.connectivity)


def _box_diameter_mm(components: sitk.Image, box: tuple[slice, ...], lesion_ids: Sequence[int]) -> float:
    """Average diameter (mm) of the union of some lesions, measured inside a numpy-order box of ``components``."""
    roi = sitk.RegionOfInterest(components, [s.stop - s.start for s in reversed(box)], [s.start for s in reversed(box)])
    return average_diameter_mm(functools.reduce(sitk.Or, (roi == lesion_id for lesion_id in lesion_ids)))


def _row(status: str, ref, preds: list, metrics: dict, voxel_ml: float, pred_diameter_mm: float) -> dict:
    pred_voxels = sum(p.voxel_count for p in preds)
    pred_centroid = (
        np.average([p.centroid_mm for p in preds], axis=0, weights=[p.voxel_count for p in preds]) if preds else [math.nan] * 3
    )
    ref_centroid = ref.centroid_mm if ref else (math.nan,) * 3
    return {
        "status": status,
        "ref_id": ref.lesion_id if ref else 0,
        "pred_ids": ";".join(str(p.lesion_id) for p in preds),
        "dice": metrics.get("dice", 0.0),
        "hd_mm": metrics.get("hd_mm", math.nan),
        "hd95_mm": metrics.get("hd95_mm", math.nan),
        "assd_mm": metrics.get("assd_mm", math.nan),
        "ref_volume_ml": ref.volume_ml if ref else 0.0,
        "pred_volume_ml": pred_voxels * voxel_ml,
        "ref_average_diameter_mm": ref.average_diameter_mm if ref else math.nan,
        "pred_average_diameter_mm": pred_diameter_mm,
        "ref_centroid_x_mm": ref_centroid[0], "ref_centroid_y_mm": ref_centroid[1], "ref_centroid_z_mm": ref_centroid[2],
        "pred_centroid_x_mm": pred_centroid[0], "pred_centroid_y_mm": pred_centroid[1], "pred_centroid_z_mm": pred_centroid[2],
    }


def match_lesions(pred_components: sitk.Image, ref_components: sitk.Image) -> pd.DataFrame:
    """Match labelled lesions of a prediction and a reference on the same grid.

    Args:
        pred_components, ref_components: component images (0 background, one id per lesion), e.g.
            from :func:`label_lesions`.

    Returns:
        One row per reference lesion (``TP`` or ``FN``) and per unmatched predicted lesion (``FP``),
        columns :data:`LESION_COLUMNS`. For a TP, ``pred_ids`` lists every overlapping predicted
        lesion and ``dice``/``hd_mm``/... compare the reference lesion with their union (computed in
        mm, on their union box, :func:`renal_nnunet.evaluation.crop.union_box`); an FN has Dice 0 and NaN distances, an FP Dice 0.
    """
    pred = sitk.GetArrayViewFromImage(pred_components)
    ref = sitk.GetArrayViewFromImage(ref_components)
    if pred.shape != ref.shape:
        raise ValueError(f"component images differ in shape: pred {pred.shape}, ref {ref.shape}")
    spacing_zyx = tuple(reversed(pred_components.GetSpacing()))
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    pred_props = {p.lesion_id: p for p in lesion_properties(pred_components)}
    ref_props = {p.lesion_id: p for p in lesion_properties(ref_components)}
    both = (pred > 0) & (ref > 0)
    pairs = np.unique(np.stack([ref[both], pred[both]]), axis=1) if both.any() else np.zeros((2, 0), int)
    rows = []
    for ref_id, ref_prop in ref_props.items():
        pred_ids = sorted(int(p) for p in pairs[1, pairs[0] == ref_id])
        if not pred_ids:
            rows.append(_row("FN", ref_prop, [], {}, voxel_ml, math.nan))
            continue
        matched = [pred_props[p] for p in pred_ids]
        ref_mask, pred_mask = ref == ref_id, np.isin(pred, pred_ids)
        box = union_box((ref_mask, pred_mask), margin_voxels=1)
        metrics = segmentation_metrics(pred_mask[box], ref_mask[box], spacing_zyx)
        diameter = _box_diameter_mm(pred_components, box, pred_ids)
        rows.append(_row("TP", ref_prop, matched, metrics, voxel_ml, diameter))
    matched_pred = set(int(p) for p in pairs[1])
    for pred_id, pred_prop in pred_props.items():
        if pred_id not in matched_pred:
            rows.append(_row("FP", None, [pred_prop], {}, voxel_ml, pred_prop.average_diameter_mm))
    return pd.DataFrame(rows, columns=list(LESION_COLUMNS))


def detect_lesions(
    pred_mask: np.ndarray, ref_mask: np.ndarray, spacing: Sequence[float], config: DetectionConfig = DetectionConfig()
) -> pd.DataFrame:
    """Detection table of two lesion masks given as arrays (see :func:`match_lesions`).

    Args:
        pred_mask, ref_mask: boolean masks, numpy (z, y, x) order.
        spacing: voxel spacing in mm per array axis (numpy order).
        config: connectivity and size filter.
    """
    pred_mask, ref_mask = np.asarray(pred_mask), np.asarray(ref_mask)
    if pred_mask.shape != ref_mask.shape:
        raise ValueError(f"masks differ in shape: pred {pred_mask.shape}, ref {ref_mask.shape}")
    images = []
    for mask in (pred_mask, ref_mask):
        image = sitk.GetImageFromArray((mask != 0).astype(np.uint8))
        image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
        images.append(label_lesions(image, config))
    return match_lesions(*images)


def detection_scores(rows: pd.DataFrame) -> dict[str, float]:
    """TP/FP/FN counts and the paper's precision, recall and F1 of a detection table.

    Returns:
        ``tp``, ``fp``, ``fn``, ``precision`` = TP/(TP+FP), ``recall`` = TP/(TP+FN) and their ``f1``;
        a ratio whose denominator is 0 is NaN.
    """
    counts = rows["status"].value_counts() if len(rows) else pd.Series(dtype=int)
    tp, fp, fn = (int(counts.get(s, 0)) for s in ("TP", "FP", "FN"))
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else (0.0 if tp + fp and tp + fn else math.nan)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def joined_and_split(rows: pd.DataFrame) -> dict[str, int]:
    """Reference lesions a detection table finds, but not one to one with predicted components.

    The paper counts both kinds as TPs (module docstring); a check that two segmentations report
    *the same* masses must not (one predicted component over two reference lesions reports one mass
    where the reference reports two).

    Args:
        rows: a :func:`match_lesions` table, or several cases' with a ``case_id`` column (component
            ids are per case).

    Returns:
        ``joined``: TP reference lesions whose predicted component overlaps another reference
        lesion too; ``split``: TP reference lesions overlapped by more than one predicted component.
    """
    found = rows[rows["status"] == "TP"]
    keys = found["case_id"] if "case_id" in found.columns else pd.Series(0, index=found.index)
    joined = split = 0
    for _, case in found.groupby(keys):
        pred_ids = [ids.split(";") for ids in case["pred_ids"]]
        shared = pd.Series([p for ids in pred_ids for p in ids]).value_counts()
        joined += sum(any(shared[p] > 1 for p in ids) for ids in pred_ids)
        split += sum(len(ids) > 1 for ids in pred_ids)
    return {"joined": int(joined), "split": int(split)}
