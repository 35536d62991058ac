"""What every stage shares about a CT and its labels.

One module per concept: ``box`` (a box of voxels), ``geometry`` (patient coordinates, the
networks' orientation, grid resampling and the grid sidecar),
``intensity`` (the paper's CT window), ``grid`` (the one grid-image preparation for training and
inference), ``sides`` (body midline, left/right kidneys in patient coordinates), ``sinus`` (renal
sinus filling), ``lesions`` (connected components, sizes), ``crops`` (the classifier's lesion
crop), ``lesion_classes`` (pathology -> AML/cystic/solid), ``labels`` and ``label_maps`` (the
label-map conventions of KiTS, the stages and the pipeline output).

Conversion, inference, classification and evaluation all import from here; nothing here imports
them. Public names are imported lazily so ``import renal_nnunet.anatomy`` stays light.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "ImageGeometry": "geometry", "GridSidecar": "geometry", "image_like": "geometry",
    "resample_to_grid": "geometry", "resample_from_grid": "geometry",
    "physical_points_mm": "geometry", "paste_on_grid": "geometry", "Box": "box", "bounding_box_with_margin": "box",
    "window_ct": "intensity", "prepare_grid_ct": "grid", "labels_to_grid": "grid",
    "body_midline_mm": "sides", "kidney_side_labels": "sides", "mass_side": "sides",
    "paper_kidney_sides": "sides", "fill_renal_sinus": "sinus",
    "lesion_components": "lesions", "average_diameter_mm": "lesions", "lesion_properties": "lesions",
    "lesion_crop": "crops", "lesion_class": "lesion_classes",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
