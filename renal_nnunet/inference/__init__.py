"""Running the trained networks on CTs: one stage (:mod:`.stage`: the CT prepared on the model's
grid, nnU-Net's predictor, probabilities back in the CT's geometry), the cascade (:mod:`.cascade`:
kidneys -> boxes -> masses -> components) and mapping grid predictions back (:mod:`.map_back`).

Public names are imported lazily (they pull in torch and nnU-Net).
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "predict_grid_probabilities": "stage", "predict_stage_probabilities": "stage",
    "predict_stage_labels": "stage", "model_grid_size": "stage", "FoldProbabilities": "stage",
    "run_network": "stage", "segment_kidneys": "cascade", "kidney_boxes": "cascade", "segment_masses": "cascade",
    "lesion_sides": "cascade", "keep_masses_on_kidneys": "cascade",
    "map_labels_to_source": "map_back", "map_predictions_to_source": "map_back",
    "predict_stage_files": "map_back",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
