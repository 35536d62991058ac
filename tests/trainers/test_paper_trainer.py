"""The paper trainer's settings, read off a trainer constructed on a planned dataset, and its
registration with nnU-Net's own trainer lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIRST_ID, KIDNEY_DATASET, SMOKE


def _trainer(env: dict[str, str], trainer_class):
    import torch

    preprocessed = Path(env["nnUNet_preprocessed"]) / KIDNEY_DATASET
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # what nnUNetv2_train adds before constructing a trainer
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    return trainer_class(plans, "3d_fullres", 0, dataset_json, device=torch.device("cpu")), plans


def test_trainer_reads_like_the_paper(planned_tiny_kidney, use_env):
    import torch
    from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    from renal_nnunet.trainers import nnUNetTrainerRenalPaper
    from renal_nnunet.trainers.augmentation import RandomInplaneTranslation

    use_env(planned_tiny_kidney)
    trainer, plans = _trainer(planned_tiny_kidney, nnUNetTrainerRenalPaper)
    trainer.initialize()

    assert type(trainer.optimizer) is torch.optim.Adam
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    trainer.lr_scheduler.step(300)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4), "learning rate is constant"
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.0, "the paper states no weight decay"
    assert trainer.num_epochs == 400
    assert trainer.batch_size == 4
    assert trainer.oversample_foreground_percent == 0

    planned_features = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"]
    assert planned_features[0] == 32, "stock plans (nnU-Net's 32 base filters) are left untouched"
    assert list(trainer.network.encoder.output_channels) == [16, 32, 64, 128]
    rebuilt = nnUNetTrainerRenalPaper.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager, 1, 3, enable_deep_supervision=False)
    assert list(rebuilt.encoder.output_channels) == [16, 32, 64, 128], "the predictor rebuilds the same network"

    rotation, dummy_2d, initial_patch_size, mirror_axes = \
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    assert mirror_axes is None and trainer.inference_allowed_mirroring_axes is None
    assert not dummy_2d
    assert np.rad2deg(rotation) == pytest.approx((-10.0, 10.0))
    transforms = trainer.get_training_transforms(trainer.configuration_manager.patch_size, rotation, None,
                                                 mirror_axes, dummy_2d).transforms
    spatial = [t for t in transforms if isinstance(t, SpatialTransform)]
    assert len(spatial) == 1 and spatial[0].p_scaling == 0 and spatial[0].p_elastic_deform == 0
    assert not any(isinstance(t, MirrorTransform) for t in transforms)
    shifts = [t.transform for t in transforms if isinstance(getattr(t, "transform", None), RandomInplaneTranslation)]
    assert len(shifts) == 1 and shifts[0].max_fraction == 0.1 and shifts[0].inplane_axes == (1, 2)

    train_loader, val_loader = trainer.get_dataloaders()
    try:
        batch = next(train_loader)
        assert tuple(batch["data"].shape) == (4, 1, 32, 32, 32), "batches of 4 whole 32^3 grid images"
    finally:
        train_loader._finish()
        val_loader._finish()


# Named variant -> (epochs, iterations per epoch, validation iterations per epoch, learning rate).
# The demo's lengths are those it trained with when they were set on a built trainer (12 minutes:
# 28 x 20, 2 minutes: 5 x 20, validation a fifth of the iterations).
VARIANT_LENGTHS = {
    "nnUNetTrainerRenalPaper_5epochs": (5, 250, 50, 1e-4),
    "nnUNetTrainerRenalPaper_CPUtiny": (4, 25, 1, 3e-3),
    "nnUNetTrainerRenalPaper_CPUsmoke": (1, 5, 1, 3e-3),
    "nnUNetTrainerRenalPaper_CPUdemo2min": (5, 20, 4, 3e-3),
    "nnUNetTrainerRenalPaper_CPUdemo12min": (28, 20, 4, 3e-3),
    "nnUNetTrainer_CPUsmoke": (1, 5, 1, 1e-2),
    "nnUNetTrainer_CPUdemo2min": (5, 20, 4, 1e-2),
    "nnUNetTrainer_CPUdemo12min": (28, 20, 4, 1e-2),
}


def test_named_variants_train_as_long_as_their_name_says(planned_tiny_kidney, use_env):
    """Each variant's length is set when it is built (nnU-Net's ``_Xepochs`` way) and readable off
    its class; nnU-Net's own lookup finds every one by name."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from renal_nnunet.trainers.paper import nnUNetTrainerRenalPaper
    from renal_nnunet.trainers.registration import trainer_lookup

    use_env(planned_tiny_kidney)
    for name, (epochs, iterations, val_iterations, learning_rate) in VARIANT_LENGTHS.items():
        with trainer_lookup():
            trainer_class = recursive_find_trainer_class_by_name(name)
        assert trainer_class.__name__ == name
        assert issubclass(trainer_class, nnUNetTrainerRenalPaper) == name.startswith("nnUNetTrainerRenalPaper")
        assert issubclass(trainer_class, nnUNetTrainer)
        trainer, _ = _trainer(planned_tiny_kidney, trainer_class)
        assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (
            epochs, iterations, val_iterations), name
        assert (trainer_class.LENGTH.epochs, trainer_class.LENGTH.iterations_per_epoch,
                trainer_class.LENGTH.val_iterations_per_epoch) == (epochs, iterations, val_iterations), name
        assert trainer.initial_lr == pytest.approx(learning_rate), name


def test_the_demos_default_length_decays_its_learning_rate_where_the_paper_keeps_it(planned_tiny_kidney, use_env):
    """560 steps at a constant rate end wherever the last step left the weights; the demo's default
    length decays the rate to zero (nnU-Net's poly schedule), the paper trainer keeps 1e-4."""
    from renal_nnunet.trainers.paper import nnUNetTrainerRenalPaper_CPUdemo12min

    use_env(planned_tiny_kidney)
    trainer, _ = _trainer(planned_tiny_kidney, nnUNetTrainerRenalPaper_CPUdemo12min)
    trainer.initialize()
    rates = []
    for epoch in (0, 14, 27):
        trainer.lr_scheduler.step(epoch)
        rates.append(trainer.optimizer.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(3e-3)
    assert rates[0] > rates[1] > rates[2] and rates[2] < 0.1 * rates[0]


@pytest.mark.slow
def test_tiny_trainer_repeats_exactly(planned_tiny_kidney, use_env, tmp_path):
    """The CPU variants are seeded from the fold: the same fold trained twice gives the same weights
    (the 5-step variant, so the test stays short)."""
    import torch

    from renal_nnunet.pipeline.training import train_stage

    # augmentation in the training process (the CPU default when nnUNet_n_proc_DA is unset): worker
    # processes would deliver batches in a nondeterministic order
    use_env({**planned_tiny_kidney, "nnUNet_results": str(tmp_path / "results"), "nnUNet_n_proc_DA": "0"})
    runs = []
    for _ in range(2):
        model_dir = train_stage(FIRST_ID, 3, SMOKE)
        checkpoint = torch.load(model_dir / "fold_3" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        runs.append(checkpoint["network_weights"])
    first, second = runs
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_env_line_lets_nnunet_find_the_trainers_and_user_subclasses(tmp_path, monkeypatch, capsys):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from renal_nnunet.cli import main
    from renal_nnunet.trainers.paper import nnUNetTrainerRenalPaper

    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    with pytest.raises(RuntimeError, match="Could not find"):
        recursive_find_trainer_class_by_name("nnUNetTrainerRenalPaper")

    user_folder = tmp_path / "my_trainers"
    user_folder.mkdir()
    (user_folder / "my_renal_variants.py").write_text(
        "from renal_nnunet.trainers import nnUNetTrainerRenalPaper\n\n"
        "class nnUNetTrainerRenalPaper_MyLab(nnUNetTrainerRenalPaper):\n"
        "    pass\n")
    monkeypatch.setenv("nnUNet_extTrainer", str(user_folder))
    assert main(["env"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("export nnUNet_extTrainer=")
    monkeypatch.setenv("nnUNet_extTrainer", line.split("=", 1)[1].strip("'"))

    assert recursive_find_trainer_class_by_name("nnUNetTrainerRenalPaper") is nnUNetTrainerRenalPaper
    user_class = recursive_find_trainer_class_by_name("nnUNetTrainerRenalPaper_MyLab")
    assert issubclass(user_class, nnUNetTrainerRenalPaper)
