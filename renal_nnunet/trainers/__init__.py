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

import importlib

_LAZY = {
    "nnUNetTrainerRenalPaper": "renal_nnunet.trainers.paper",
    "nnUNetTrainerRenalPaper_5epochs": "renal_nnunet.trainers.paper",
    "nnUNetTrainerRenalPaper_CPUtiny": "renal_nnunet.trainers.paper",
    "predict_grid_probabilities": "renal_nnunet.trainers.inference",
    "predict_stage_probabilities": "renal_nnunet.trainers.inference",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
