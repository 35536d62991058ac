"""Where nnU-Net keeps a trained model: grid size from plans, fold checkpoints, fold parsing, and
clear errors for a wrong model folder or a missing fold."""

from __future__ import annotations

import json

import pytest

from renal_nnunet.io import InputError
from renal_nnunet.nnunet.layout import model_grid_size, parse_folds


def _model_dir(tmp_path, median_size):
    model_dir = tmp_path / "Dataset501_RenalKidney128" / "nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres"
    model_dir.mkdir(parents=True)
    plans = {"configurations": {"3d_fullres": {"median_image_size_in_voxels": median_size}}}
    (model_dir / "plans.json").write_text(json.dumps(plans))
    return model_dir


def test_grid_size_comes_from_the_plans(tmp_path):
    assert model_grid_size(_model_dir(tmp_path, [128.0, 128.0, 128.0])) == 128


def test_grid_size_is_rounded_and_the_models_folder_reads_it_the_same_way(tmp_path):
    """One rule for the grid of a model: the plans' float median rounded (127.9999 is 128, not 127),
    used by inference and by the models folder's manifest."""
    import renal_nnunet.pipeline.models as models

    assert model_grid_size(_model_dir(tmp_path / "a", [127.9999, 128.0001, 127.6])) == 128
    assert model_grid_size(_model_dir(tmp_path / "b", [31.4, 31.49, 30.6])) == 31
    assert models.model_grid_size is model_grid_size


def test_a_model_not_trained_on_a_cubic_grid_is_refused(tmp_path):
    with pytest.raises(InputError, match="not a cubic grid"):
        model_grid_size(_model_dir(tmp_path, [90.0, 512.0, 512.0]))


def test_a_folder_without_plans_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match="no plans.json"):
        model_grid_size(tmp_path)


def test_a_missing_fold_names_its_checkpoint(tmp_path):
    from renal_nnunet.inference.ensemble import FoldEnsemble

    model_dir = _model_dir(tmp_path, [32.0, 32.0, 32.0])
    with pytest.raises(InputError, match=r"fold_3.*checkpoint missing"):
        FoldEnsemble(model_dir, folds=(3,))


def test_folds_parse_as_nnunet_takes_them_and_a_bad_one_is_named():
    assert parse_folds(["0", "4", "all"]) == (0, 4, "all")
    with pytest.raises(ValueError, match="integers or 'all', got 'x'"):
        parse_folds(["0", "x"])
