"""Temperature scaling of the classifier's probabilities, fitted on out-of-fold predictions.

Softmax outputs of a fold ensemble are over-confident. One temperature ``T`` (Guo et al., 2017)
rescales every fold model's logits, ``softmax(z / T)``; since ``log softmax(z)`` differs from
``z`` by a constant, the same follows from the stored probabilities: ``softmax(log p / T)``.

``T`` is fitted by minimising the negative log-likelihood of the out-of-fold predictions (each
lesion predicted by the fold model that did not train on it). The expected calibration error
(ECE, top class, 10 equal-width bins) before and after is measured on held-out lesions: each
fold's lesions are rescaled with a temperature fitted on the other folds only. The result goes to
``<classifier out_dir>/calibration.json`` and, through ``assemble-models``, into the models
manifest.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from renal_nnunet.io import InputError, write_json

__all__ = ["CALIBRATION_FILE", "apply_temperature", "fit_temperature", "expected_calibration_error",
           "out_of_fold_probabilities", "calibrate_classifier"]

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
TEMPERATURE_RANGE = (0.05, 20.0)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` over the last axis (classes); ``T = 1`` returns ``p``.

    >>> apply_temperature(np.array([0.8, 0.2]), 2.0).round(3).tolist()
    [0.667, 0.333]
    """
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, None)) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def _nll(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = apply_temperature(probabilities, temperature)
    return float(-np.mean(np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-12, None))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (n,) under
    ``probabilities`` (n, classes), searched in :data:`TEMPERATURE_RANGE` on a log scale."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        raise ValueError("no predictions to fit a temperature on")
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(lambda log_t: _nll(probabilities, labels, float(np.exp(log_t))), bounds=(low, high),
                             method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Top-class ECE: the lesion-weighted mean over equal-width confidence bins of
    |accuracy - mean confidence|. 0 is perfectly calibrated.

    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
    0.4
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
                for b in range(bins) if np.any(which == b))
    return round(float(error), 12)


@torch.no_grad()
def out_of_fold_probabilities(lesions_dir: str | os.PathLike, checkpoints: Mapping[int, str | os.PathLike],
                              device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax of each fold's model on that fold's validation lesions.

    Args:
        lesions_dir: the converter's ``RenalLesions`` folder the folds were trained on.
        checkpoints: validation fold -> that fold's checkpoint.

    Returns:
        ``(probabilities (n, classes), labels (n,), folds (n,))`` over all folds' validation lesions.
    """
    from renal_nnunet.classification.data import LesionCropDataset, fold_split, read_lesion_table
    from renal_nnunet.classification.train import load_classifier

    table = read_lesion_table(lesions_dir)
    probabilities, labels, folds = [], [], []
    for fold, checkpoint in sorted(checkpoints.items()):
        _, val_rows = fold_split(table, fold)
        model, info = load_classifier(checkpoint, device)
        for volumes, truth in DataLoader(LesionCropDataset(val_rows, int(info["grid"])), batch_size=8):
            probabilities.append(torch.softmax(model(volumes.to(device)), dim=1).cpu().numpy())
            labels.append(truth.numpy())
            folds.append(np.full(len(truth), fold))
    if not probabilities:
        raise InputError(lesions_dir, "the folds have no validation lesions to calibrate on")
    return np.concatenate(probabilities), np.concatenate(labels), np.concatenate(folds)


def calibrate_classifier(lesions_dir: str | os.PathLike, out_dir: str | os.PathLike,
                         checkpoints: Mapping[int, str | os.PathLike], device: str = "cpu") -> dict:
    """Fit the temperature on the folds' out-of-fold predictions; write ``out_dir/calibration.json``.

    Returns:
        ``{"temperature", "ece_before", "ece_after", "lesions", "folds"}``; the ECEs are on
        held-out lesions (each fold rescaled with the temperature of the other folds).
    """
    probabilities, labels, folds = out_of_fold_probabilities(lesions_dir, checkpoints, device)
    held_out = np.empty_like(probabilities)
    for fold in np.unique(folds):
        others = folds != fold
        temperature = fit_temperature(probabilities[others], labels[others]) if others.any() else 1.0
        held_out[~others] = apply_temperature(probabilities[~others], temperature)
    result = {"temperature": fit_temperature(probabilities, labels),
              "ece_before": expected_calibration_error(probabilities, labels),
              "ece_after": expected_calibration_error(held_out, labels),
              "lesions": int(len(labels)), "folds": sorted(int(f) for f in checkpoints)}
    write_json(result, Path(out_dir) / CALIBRATION_FILE)
    log.info("classifier calibration on %d out-of-fold lesions: temperature %.3f, ECE %.3f before, %.3f after "
             "(held-out folds)", result["lesions"], result["temperature"], result["ece_before"], result["ece_after"])
    return result
