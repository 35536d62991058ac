"""Re-export of renal_nnunet's trainers for nnU-Net's ``nnUNet_extTrainer`` lookup (``-tr NAME``)."""

from renal_nnunet.trainers.paper import (  # noqa: F401  (re-exported for nnU-Net's lookup)
    nnUNetTrainerRenalPaper,
    nnUNetTrainerRenalPaper_5epochs,
    nnUNetTrainerRenalPaper_CPUtiny,
)
