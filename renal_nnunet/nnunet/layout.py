"""Where nnU-Net keeps a trained model, and its predictor built one way.

A trained-model folder is ``TRAINER__PLANS__CONFIGURATION`` holding ``plans.json``,
``dataset.json`` and ``fold_k/checkpoint_final.pth`` per fold, as ``nnUNetv2_train`` writes it.
Every module that reads one goes through these names.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Iterable

from renal_nnunet.io import InputError

__all__ = ["CHECKPOINT_NAME", "parse_folds", "fold_dir", "fold_checkpoint", "trained_fold_checkpoints",
           "load_checkpoint", "read_plans", "configuration_name", "model_grid_size", "new_predictor"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint_final.pth"
"""Checkpoint file nnU-Net v2 writes at the end of training in each ``fold_k`` folder."""

Fold = int | str
"""A fold: an integer, or ``all`` (the model nnU-Net trains on every case)."""


def parse_folds(values: Iterable) -> tuple[Fold, ...]:
    """Folds as nnU-Net takes them (``-f 0 1 2``): integers, and ``all``.

    >>> parse_folds(["0", "3", "all"])
    (0, 3, 'all')

    Raises:
        ValueError: a value that is neither an integer nor ``all``.
    """
    folds = []
    for value in values:
        if value == "all":
            folds.append("all")
            continue
        try:
            folds.append(int(value))
        except (TypeError, ValueError):
            raise ValueError(f"folds must be integers or 'all', got {value!r}") from None
    return tuple(folds)


def fold_dir(model_dir: str | os.PathLike, fold: Fold) -> Path:
    """The ``fold_k`` folder of one fold of a trained-model folder."""
    return Path(model_dir) / f"fold_{fold}"


def fold_checkpoint(model_dir: str | os.PathLike, fold: Fold) -> Path:
    """The final checkpoint of one fold of a trained-model folder."""
    return fold_dir(model_dir, fold) / CHECKPOINT_NAME


def trained_fold_checkpoints(model_dir: str | os.PathLike, folds: Iterable[Fold]) -> tuple[Path, ...]:
    """The folds' final checkpoints, each checked to exist.

    Raises:
        InputError: a fold has no final checkpoint (not trained, or still training).
    """
    checkpoints = []
    for fold in folds:
        checkpoint = fold_checkpoint(model_dir, fold)
        if not checkpoint.is_file():
            raise InputError(checkpoint, f"checkpoint missing: fold {fold} of this model is not trained (or still "
                             "training); train it or choose other folds")
        checkpoints.append(checkpoint)
    return tuple(checkpoints)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint's content (``torch.load`` on the CPU, as nnU-Net loads it).

    Raises:
        InputError: the file cannot be loaded (truncated, corrupt, not a torch checkpoint).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise InputError(path, "checkpoint does not exist") from None
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a damaged file
        raise InputError(path, f"cannot be loaded as a checkpoint ({type(err).__name__}: {str(err).splitlines()[0]}): "
                               "the file is truncated or corrupt; copy it again (or retrain that fold)") from None


def read_plans(model_dir: str | os.PathLike) -> dict:
    """The ``plans.json`` of a trained-model folder.

    Raises:
        InputError: not a trained-model folder, or its plans cannot be read.
    """
    plans_path = Path(model_dir) / "plans.json"
    if not plans_path.is_file():
        raise InputError(model_dir, "is not an nnU-Net trained-model folder (no plans.json); expected e.g. "
                         ".../Dataset501_RenalKidney128/nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres")
    try:
        return json.loads(plans_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(plans_path, f"cannot be read as JSON: {err}") from None


def configuration_name(model_dir: str | os.PathLike) -> str:
    """The configuration of a trained-model folder, from its name ``TRAINER__PLANS__CONFIGURATION``."""
    parts = Path(model_dir).name.split("__")
    if len(parts) != 3:
        raise InputError(model_dir, "folder name is not nnU-Net's TRAINER__PLANS__CONFIGURATION")
    return parts[2]


def model_grid_size(model_dir: str | os.PathLike) -> int:
    """Grid edge G (voxels) a model was trained on, from its plans (every training image is G^3).

    The plans' median image size is a float; it is rounded to the nearest voxel (a median of
    127.9999 is grid 128, not 127). The one place the grid is read from a model.

    Raises:
        InputError: not a model folder, or its training images were not a fixed cubic grid.
    """
    model_dir = Path(model_dir)
    plans = read_plans(model_dir)
    configuration = configuration_name(model_dir)
    try:
        median = plans["configurations"][configuration]["median_image_size_in_voxels"]
    except KeyError:
        raise InputError(model_dir / "plans.json", f"has no configuration {configuration!r}") from None
    sizes = {int(round(s)) for s in median}
    if len(sizes) != 1:
        raise InputError(model_dir / "plans.json", f"training images are {median} voxels, not a cubic grid; "
                         "this model was not trained on a renal-nnunet grid dataset")
    return sizes.pop()


def new_predictor(model_dir: str | os.PathLike, folds: Iterable[Fold], device: str, predictor_class=None,
                  checkpoint_name: str = CHECKPOINT_NAME, **settings):
    """nnU-Net's predictor (or a subclass) with the folds' weights loaded, as ``nnUNetv2_predict``
    initialises it, the project's trainers findable: the one place a predictor is built.

    Args:
        model_dir: trained-model folder.
        folds: folds to load.
        device: torch device name.
        predictor_class: ``nnUNetPredictor`` or a subclass (default ``nnUNetPredictor``).
        checkpoint_name: the checkpoint file of each fold (default the final one).
        settings: keyword arguments of the predictor's constructor other than the device
            (default: nnU-Net's own, no progress bars, on-device work unless on the CPU).
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from renal_nnunet.trainers.registration import trainer_lookup

    predictor_class = predictor_class or nnUNetPredictor
    options = {"perform_everything_on_device": device != "cpu", "verbose": False, "allow_tqdm": False, **settings}
    folds = tuple(folds)
    # nnU-Net prints its trainer search ("Searching in: ...", "Using trainer ...") and device notes
    # to stdout while it builds a predictor: its diagnostics, kept for -v in the debug log.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            predictor = predictor_class(device=torch.device(device), **options)
            with trainer_lookup():
                predictor.initialize_from_trained_model_folder(str(model_dir), use_folds=folds,
                                                               checkpoint_name=checkpoint_name)
    except Exception:
        for fold in folds:  # name the damaged checkpoint (nnU-Net's own error does not)
            load_checkpoint(fold_dir(model_dir, fold) / checkpoint_name)
        raise
    finally:
        for line in printed.getvalue().splitlines():
            if line.strip():
                log.debug("nnU-Net (%s): %s", Path(model_dir).name, line.strip())
    return predictor
