"""Running the trained U-Nets on CTs: one stage's folds on a runtime (:mod:`.ensemble`: nnU-Net's
predictor, grid probabilities), one stage on a CT (:mod:`.grid_to_ct`: the CT prepared on the
model's grid, probabilities back in the CT's geometry, boxes merged), the cascade (:mod:`.cascade`:
kidneys -> boxes -> masses -> components), mapping grid predictions back (:mod:`.map_back`) and the
kidney Dice a grid allows a perfect network (:mod:`.grid_ceiling`).

Public names are imported lazily (they pull in torch and nnU-Net).
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "FoldEnsemble": "ensemble", "FoldProbabilities": "ensemble",
    "predict_stage_probabilities": "grid_to_ct", "predict_stage_labels": "grid_to_ct", "label_boxes": "grid_to_ct",
    "segment_kidneys": "cascade", "kidney_boxes": "cascade", "segment_masses": "cascade",
    "lesion_sides": "cascade", "keep_masses_on_kidneys": "cascade",
    "map_labels_to_source": "map_back", "map_predictions_to_source": "map_back",
    "predict_stage_files": "map_back",
    "kidney_grid_ceiling": "grid_ceiling", "kidney_dice_ceiling": "grid_ceiling",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
