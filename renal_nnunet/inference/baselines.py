"""Any trained nnU-Net model as a baseline, run by nnU-Net's own predictor on the CT as stored.

A baseline is a trained-model folder ``TRAINER__PLANS__CONFIGURATION`` as ``nnUNetv2_train``
writes it, whatever its trainer, plans (the ResEnc presets included) and configuration. A
``3d_cascade_fullres`` model runs its previous stage first (the plans' ``previous_stage``, found
beside it under the same dataset, trainer and plans, or named explicitly) and hands the previous
stage's labels, on the CT's grid, to the cascade exactly as ``nnUNetv2_predict
-prev_stage_predictions`` does: nnU-Net's preprocessor resamples them with the image and one-hot
encodes them as extra input channels.

Stock settings throughout: Gaussian sliding window with half-patch steps and mirroring
(``nnUNetPredictor``'s defaults, as ``nnUNetv2_predict`` uses them). The CT goes in as nnU-Net's
``SimpleITKIO`` would read it from a file (array (z, y, x), spacing reversed), so a DICOM series and
a NIfTI file of the same CT give the same input.

Labels: the model's own label values (its ``dataset.json``) come back on the CT's grid
(:meth:`BaselinePredictor.raw_labels`); :func:`to_output_labels` puts them into the pipeline's
convention for evaluation: the label named ``kidney`` becomes kidney (side from patient
coordinates), every other foreground label (mass, tumor, cyst, masses) a mass (label 6, no class).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.io import InputError
from renal_nnunet.nnunet.layout import Fold, new_predictor, read_plans, trained_fold_checkpoints

__all__ = ["TrainedModel", "Baseline", "BaselinePredictor", "parse_baseline", "to_output_labels", "nnunet_input"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedModel:
    """One nnU-Net trained-model folder ``TRAINER__PLANS__CONFIGURATION``.

    Raises (on construction):
        InputError: the folder does not exist, is not named as nnU-Net names it, or has no
            ``plans.json``/``dataset.json`` or no such configuration in its plans.
    """

    folder: Path

    def __post_init__(self):
        folder = Path(self.folder)
        object.__setattr__(self, "folder", folder)
        if not folder.is_dir():
            raise InputError(folder, "trained-model folder does not exist")
        if len(folder.name.split("__")) != 3:
            raise InputError(folder, "is not an nnU-Net trained-model folder: its name is not "
                                     "TRAINER__PLANS__CONFIGURATION (e.g. nnUNetTrainer__nnUNetPlans__3d_fullres)")
        if self.configuration not in read_plans(folder)["configurations"]:
            raise InputError(folder / "plans.json", f"has no configuration {self.configuration!r}")
        if not (folder / "dataset.json").is_file():
            raise InputError(folder, "has no dataset.json (not a complete nnU-Net trained-model folder)")

    @property
    def trainer(self) -> str:
        return self.folder.name.split("__")[0]

    @property
    def plans_name(self) -> str:
        return self.folder.name.split("__")[1]

    @property
    def configuration(self) -> str:
        return self.folder.name.split("__")[2]

    @property
    def labels(self) -> dict:
        """The ``labels`` of its ``dataset.json`` (name -> value, or list of values for a region)."""
        return json.loads((self.folder / "dataset.json").read_text())["labels"]

    def previous_stage_name(self) -> str | None:
        """The configuration this one's input includes the labels of (``3d_lowres`` for nnU-Net's
        ``3d_cascade_fullres``), None for a single-stage model."""
        return read_plans(self.folder)["configurations"][self.configuration].get("previous_stage")

    def sibling(self, configuration: str) -> Path:
        """The folder of another configuration of the same dataset, trainer and plans."""
        return self.folder.parent / f"{self.trainer}__{self.plans_name}__{configuration}"


@dataclass(frozen=True)
class Baseline:
    """A named baseline: its trained model and, for a cascade, the model of its previous stage."""

    name: str
    model: TrainedModel
    previous: TrainedModel | None = None

    @classmethod
    def of(cls, name: str, folder: str | Path, previous_folder: str | Path | None = None) -> "Baseline":
        """The baseline ``name`` of a trained-model folder; a cascade's previous stage is the
        folder given, else the one beside it named after the plans' ``previous_stage``.

        Raises:
            InputError: not a trained-model folder; a cascade whose previous stage is missing, or
                a previous stage given to a model that has none.
        """
        model = TrainedModel(Path(folder))
        stage = model.previous_stage_name()
        if stage is None:
            if previous_folder is not None:
                raise InputError(previous_folder, f"given as the previous stage of {model.folder.name}, whose "
                                                  "configuration has no previous stage")
            return cls(name, model)
        previous = Path(previous_folder) if previous_folder is not None else model.sibling(stage)
        if not previous.is_dir():
            raise InputError(model.folder, f"is a cascade whose previous stage {stage} was not found at {previous}: "
                                           f"train it (nnUNetv2_train DATASET {stage} FOLD) or name its folder")
        return cls(name, model, TrainedModel(previous))


def parse_baseline(spec: str) -> tuple[str, Path]:
    """``NAME=TRAINED_MODEL_FOLDER`` (``compare --baseline``) as (name, folder).

    Raises:
        ValueError: no ``=``, or an empty name or folder.
    """
    name, sep, folder = spec.partition("=")
    if not sep or not name.strip() or not folder.strip():
        raise ValueError(f"--baseline {spec!r}: give NAME=TRAINED_MODEL_FOLDER, e.g. "
                         "resenc_l=$nnUNet_results/Dataset504_RenalOneStage/nnUNetTrainer__nnUNetResEncUNetLPlans__3d_fullres")
    return name.strip(), Path(folder.strip())


def nnunet_input(ct: sitk.Image) -> tuple[np.ndarray, dict]:
    """The ``(data, properties)`` nnU-Net's ``SimpleITKIO.read_images`` makes of one 3D image file,
    made from an image in memory (its reader takes files only; a DICOM series is a folder).
    ``data`` is (1, z, y, x) float32; ``properties['spacing']`` is mm in that axis order."""
    spacing = ct.GetSpacing()
    properties = {"sitk_stuff": {"spacing": spacing, "origin": ct.GetOrigin(), "direction": ct.GetDirection()},
                  "spacing": [abs(s) for s in spacing[::-1]]}
    return sitk.GetArrayFromImage(ct)[None].astype(np.float32), properties


class BaselinePredictor:
    """nnU-Net's predictors of one baseline (and its previous stage) for the given folds.

    Args:
        baseline: what to run.
        folds: folds to ensemble (nnU-Net averages their softmax), the previous stage's too.
        device: torch device (stock baselines run nnU-Net's torch predictor).

    Raises:
        InputError: a fold of the model or of its previous stage is not trained.
    """

    def __init__(self, baseline: Baseline, folds: Sequence[Fold], device: str = "cpu"):
        self.baseline = baseline
        self.folds = tuple(folds)
        self.stages = [m for m in (baseline.previous, baseline.model) if m is not None]
        for model in self.stages:
            trained_fold_checkpoints(model.folder, self.folds)
        self._predictors = [new_predictor(m.folder, self.folds, device) for m in self.stages]

    def raw_labels(self, ct: sitk.Image) -> np.ndarray:
        """The model's labels (its ``dataset.json`` values) on ``ct``'s grid, numpy (z, y, x)."""
        data, properties = nnunet_input(ct)
        previous = None
        for predictor in self._predictors:
            # float32 (1, z, y, x): what nnU-Net's reader makes of the saved previous-stage file
            # (its cropping writes -1 outside the body into this array, so it must be signed)
            segmentation_previous_stage = None if previous is None else previous[None].astype(np.float32)
            previous = np.asarray(predictor.predict_single_npy_array(data, dict(properties),
                                                                     segmentation_previous_stage))
        return previous

    def output_labels(self, ct: sitk.Image) -> sitk.Image:
        """The model's labels in the pipeline's convention on ``ct``'s grid (see :func:`to_output_labels`)."""
        return to_output_labels(self.raw_labels(ct), ct, self.baseline.model.labels)


def kidney_value(labels: dict, source: str | Path = "dataset.json") -> int:
    """The label value of the kidney in a ``dataset.json`` ``labels`` dict (a region's first value).

    Raises:
        InputError: no label named ``kidney``.
    """
    if "kidney" not in labels:
        raise InputError(source, f"has no label named 'kidney' (labels: {', '.join(labels)}); a baseline must "
                                 "segment the kidney as the one-stage and KiTS datasets do")
    value = labels["kidney"]
    return int(min(value)) if isinstance(value, (list, tuple)) else int(value)


def to_output_labels(labels: np.ndarray, ct: sitk.Image, dataset_labels: dict) -> sitk.Image:
    """A baseline's labels (numpy (z, y, x) on ``ct``'s grid) in the pipeline's convention.

    Kidney voxels become 1 (right) / 2 (left) by patient coordinates (body midline); every other
    foreground label becomes a mass (6: masses of a baseline carry no class). Works for the
    one-stage datasets (1 kidney, 2 mass) and KiTS's (1 kidney, 2 tumour, 3 cyst; or its regions).
    """
    from renal_nnunet.anatomy.sides import body_midline_mm, kidney_side_labels

    kidney_label = kidney_value(dataset_labels)
    foreground = labels > 0
    if not foreground.any():
        return image_like(np.zeros(labels.shape, np.uint8), ct)
    out = sitk.GetArrayFromImage(kidney_side_labels(image_like(foreground.astype(np.uint8), ct), body_midline_mm(ct)))
    out[foreground & (labels != kidney_label)] = OUTPUT_LABELS["mass_too_small"]
    return image_like(out.astype(np.uint8), ct)
