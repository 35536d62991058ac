"""KiTS21/KiTS23 or CSV-manifest data -> the paper's nnU-Net v2 raw datasets.

Stages, one module each: ``kits``/``manifest`` (what to read), ``sides`` (left/right in patient
coordinates), ``sinus`` (sinus filling), ``grid`` (:func:`prepare_grid_ct`, shared with inference),
``lesions`` (components, sizes), ``crops`` (classifier crops), ``lesion_classes``, ``case`` (one
case in memory), ``nnunet_dataset``/``splits`` (nnU-Net files), ``convert`` (batch).
Public names are imported lazily so ``from renal_nnunet.dataset_conversion.grid import ...`` stays light.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "ConversionConfig": "convert", "ConversionReport": "convert", "convert_kits": "convert",
    "convert_cases": "convert", "convert_manifest": "manifest", "install_splits": "splits",
    "prepare_grid_ct": "grid", "labels_to_grid": "grid", "body_midline_mm": "sides",
    "kidney_side_labels": "sides", "fill_renal_sinus": "sinus", "lesion_components": "lesions",
    "average_diameter_mm": "lesions", "lesion_properties": "lesions", "lesion_crop": "crops",
    "lesion_class": "lesion_classes", "find_kits_cases": "kits",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
