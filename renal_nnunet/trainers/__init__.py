"""nnU-Net v2 plugin: the paper's trainer classes, their augmentation and their registration.

* :mod:`~renal_nnunet.trainers.paper` — ``nnUNetTrainerRenalPaper`` and its named short variants;
* :mod:`~renal_nnunet.trainers.augmentation` — the paper's augmentation (also for the classifier);
* :mod:`~renal_nnunet.trainers.registration` — making ``-tr nnUNetTrainerRenalPaper`` resolvable.

Running a trained model lives in :mod:`renal_nnunet.inference`; nnU-Net's stock commands and
environment in :mod:`renal_nnunet.nnunet`. The trainer classes are imported lazily (they pull in
torch and nnU-Net), so importing this package stays cheap.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_LAZY = {
    "nnUNetTrainerRenalPaper": "paper",
    "nnUNetTrainerRenalPaper_5epochs": "paper",
    "nnUNetTrainerRenalPaper_CPUtiny": "paper",
    "nnUNetTrainerRenalPaper_CPUsmoke": "paper",
    "nnUNetTrainerRenalPaper_CPUdemo2min": "paper",
    "nnUNetTrainerRenalPaper_CPUdemo12min": "paper",
    "nnUNetTrainer_CPUsmoke": "paper",
    "nnUNetTrainer_CPUdemo2min": "paper",
    "nnUNetTrainer_CPUdemo12min": "paper",
    "TrainingLength": "paper",
}

__getattr__, __all__ = lazy_exports(__name__, _LAZY)
