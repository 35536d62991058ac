"""Re-export of renal_nnunet's trainers for nnU-Net's ``nnUNet_extTrainer`` lookup (``-tr NAME``)."""

from renal_nnunet.trainers.paper import (  # noqa: F401  (re-exported for nnU-Net's lookup)
    nnUNetTrainer_CPUdemo2min,
    nnUNetTrainer_CPUdemo12min,
    nnUNetTrainer_CPUsmoke,
    nnUNetTrainerRenalPaper,
    nnUNetTrainerRenalPaper_5epochs,
    nnUNetTrainerRenalPaper_CPUdemo2min,
    nnUNetTrainerRenalPaper_CPUdemo12min,
    nnUNetTrainerRenalPaper_CPUsmoke,
    nnUNetTrainerRenalPaper_CPUtiny,
)
