"""Folder for nnU-Net's ``nnUNet_extTrainer`` lookup (see renal_nnunet.trainers.registration).

nnU-Net imports every module here as a top-level module; the only one, ``renal_nnunet_trainers``,
re-exports this package's trainers under a name no other plugin will use.
"""
