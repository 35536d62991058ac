"""nnU-Net v2 plugin: the paper's trainers, their registration, and one-stage inference.

* :mod:`~renal_nnunet.trainers.paper` — ``nnUNetTrainerRenalPaper`` and its short variants;
* :mod:`~renal_nnunet.trainers.augmentation` — the paper's augmentation (also for the classifier);
* :mod:`~renal_nnunet.trainers.registration` — making ``-tr nnUNetTrainerRenalPaper`` resolvable;
* :mod:`~renal_nnunet.trainers.commands` — plan / train / predict-dataset through nnU-Net's own code;
* :mod:`~renal_nnunet.trainers.inference` — one model (5-fold ensemble) on a CT, mapped back.

The trainer classes are imported lazily (they pull in torch and nnU-Net), so importing this
package stays cheap.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_LAZY = {
    "nnUNetTrainerRenalPaper": "paper",
    "nnUNetTrainerRenalPaper_5epochs": "paper",
    "nnUNetTrainerRenalPaper_CPUtiny": "paper",
    "predict_grid_probabilities": "inference",
    "predict_stage_probabilities": "inference",
}

__getattr__, __all__ = lazy_exports(__name__, _LAZY)
