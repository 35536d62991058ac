"""One stage's trained folds on one runtime: nnU-Net's predictor, each fold's network, grid probabilities.

:class:`FoldEnsemble` is built once per stage and run (by ``predict``, ``predict-stage``,
``compare`` and ``compile-models``): it owns nnU-Net's predictor and, on the OpenVINO runtime, each
fold's compiled network. It predicts on grid images exactly as ``nnUNetv2_predict -f 0 1 2 3 4``
does: nnU-Net's own preprocessing and sliding window, the folds' logits averaged, then the softmax.

The folds are looped in one method, :meth:`EnsemblePredictor.predict_fold_logits_of_each`, the loop
of nnU-Net's ``predict_logits_from_preprocessed_data`` with each fold's logits kept, over one or
more images (both kidney boxes of a case: each fold is loaded, or compiled, once for both); the
OpenVINO runtime is the subclass :class:`OpenVinoEnsemblePredictor` that overrides that one method.
Mapping the grid back onto the CT is :mod:`renal_nnunet.inference.grid_to_ct`.

Arrays are numpy (z, y, x), channels first.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from renal_nnunet.nnunet.layout import (
    load_checkpoint,
    model_grid_size,
    new_predictor,
    parse_folds,
    trained_fold_checkpoints,
)
from renal_nnunet.runtime.backends import NETWORK_CLOCK, Runtime
from renal_nnunet.settings import PAPER

log = logging.getLogger(__name__)

__all__ = ["FoldProbabilities", "mean_logits", "EnsemblePredictor", "OpenVinoEnsemblePredictor", "FoldEnsemble"]

PREDICTOR_SETTINGS = {"tile_step_size": 0.5, "use_gaussian": True, "use_mirroring": True,
                      "verbose_preprocessing": False}
"""``nnUNetv2_predict``'s defaults: half-patch steps, Gaussian-weighted sliding window, mirroring."""


@dataclass(frozen=True)
class FoldProbabilities:
    """Class probabilities of a fold ensemble, float32 channels first (C, z, y, x numpy order).

    Attributes:
        ensemble: softmax of the folds' mean logits (nnU-Net's ensemble), not the mean of the
            fold probabilities.
        per_fold: each fold's own probabilities, in the order of the folds asked for (empty unless
            asked for: they cost one full array per fold).
    """

    ensemble: np.ndarray
    per_fold: tuple[np.ndarray, ...] = ()


def mean_logits(fold_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The folds' mean logits, summed in fold order as nnU-Net's fold loop sums them."""
    return sum(fold_logits[1:], fold_logits[0]) / len(fold_logits)


class EnsemblePredictor(nnUNetPredictor):
    """nnU-Net's predictor whose fold loop keeps each fold's logits (PyTorch runtime)."""

    def predict_fold_logits(self, data: torch.Tensor) -> list[torch.Tensor]:
        """Each fold's sliding-window logits (C, z, y, x) on preprocessed data, in fold order."""
        return self.predict_fold_logits_of_each([data])[0]

    def predict_fold_logits_of_each(self, images: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Each fold's sliding-window logits on each preprocessed image (``[image][fold]``): the
        loop of nnU-Net's ``predict_logits_from_preprocessed_data``, each fold kept, with the folds
        outside so each fold's weights are loaded once for all images. The time spent is added to
        :data:`~renal_nnunet.runtime.backends.NETWORK_CLOCK`."""
        from nnunetv2.configuration import default_num_processes

        n_threads = torch.get_num_threads()
        torch.set_num_threads(min(default_num_processes, n_threads))
        logits = [[] for _ in images]
        try:
            with NETWORK_CLOCK.timing():
                for parameters in self.list_of_parameters:
                    self._network_module().load_state_dict(parameters)
                    for per_image, data in zip(logits, images):
                        per_image.append(self.predict_sliding_window_return_logits(data).to("cpu"))
        finally:
            torch.set_num_threads(n_threads)
        return logits

    def _network_module(self) -> torch.nn.Module:
        from torch._dynamo import OptimizedModule

        return self.network._orig_mod if isinstance(self.network, OptimizedModule) else self.network

    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        """The folds' mean logits (nnU-Net's contract for this method)."""
        return mean_logits(self.predict_fold_logits(data))


class OpenVinoEnsemblePredictor(EnsemblePredictor):
    """The predictor on the OpenVINO runtime: each fold's network compiled for the CPU runs inside
    nnU-Net's own sliding window; the predictor holds no torch weights.

    Attributes:
        fold_networks: one :class:`~renal_nnunet.runtime.openvino.OpenVinoNetwork` per fold, in fold
            order (:meth:`use_fold_networks`).
    """

    fold_networks: tuple = ()

    def use_fold_networks(self, networks: Sequence[torch.nn.Module]) -> None:
        """Run these networks, one per fold, in place of the torch weights (which are dropped)."""
        self.fold_networks = tuple(networks)
        self.network, self.list_of_parameters = None, []

    def predict_fold_logits_of_each(self, images: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Each fold's sliding-window logits on each image, each fold's OpenVINO network in the
        window, compiled once for all the images and let go before the next fold's."""
        logits = [[] for _ in images]
        with NETWORK_CLOCK.timing():
            for network in self.fold_networks:
                with network.kept_compiled():
                    self.network = network
                    for per_image, data in zip(logits, images):
                        per_image.append(self.predict_sliding_window_return_logits(data).to("cpu"))
        return logits


class FoldEnsemble:
    """One stage's trained folds on one runtime, predicting on grid images.

    Args:
        model_dir: nnU-Net trained-model folder, e.g.
            ``.../Dataset501_RenalKidney128/nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres``.
        folds: folds to ensemble (their logits are averaged, as ``nnUNetv2_predict -f`` does).
        runtime: what runs the forward passes (default ``Runtime.resolve()``: OpenVINO on the CPU);
            its precision is made this stage's by :meth:`Runtime.for_stage` from the agreement
            recorded in ``model_dir`` (:mod:`renal_nnunet.runtime.agreement`).

    Attributes:
        runtime: the stage's resolved runtime (its ``precision`` and ``reason``).
        agreement: the stage's recorded agreement with fp32 for these checkpoints, or None.

    Raises:
        InputError: not a model folder, or a requested fold has no final checkpoint.
        ValueError: a precision this stage cannot run (see :meth:`Runtime.for_stage`).
    """

    def __init__(self, model_dir: str | os.PathLike, folds: Sequence[int | str] = PAPER.folds,
                 runtime: Runtime | None = None) -> None:
        from renal_nnunet.runtime.agreement import read_stage_agreement

        self.model_dir = Path(model_dir).resolve()
        self.folds = parse_folds(folds)
        self.checkpoints = trained_fold_checkpoints(self.model_dir, self.folds)
        runtime = runtime or Runtime.resolve()
        self.agreement = read_stage_agreement(self.model_dir, self.checkpoints) if runtime.backend == "openvino" else None
        self.runtime = runtime = runtime.for_stage(self.agreement)
        if runtime.backend == "openvino":
            self.predictor = self._openvino_predictor()
        else:
            self.predictor = new_predictor(self.model_dir, self.folds, runtime.device, EnsemblePredictor,
                                           **PREDICTOR_SETTINGS)
        log.debug("%s folds %s on %s", self.model_dir, self.folds, runtime)

    def __repr__(self) -> str:
        return f"FoldEnsemble({str(self.model_dir)!r}, folds={self.folds}, runtime={self.runtime})"

    @functools.cached_property
    def grid(self) -> int:
        """Grid edge G (voxels) the stage was trained on (:func:`~renal_nnunet.nnunet.layout.model_grid_size`)."""
        return model_grid_size(self.model_dir)

    def _openvino_predictor(self) -> OpenVinoEnsemblePredictor:
        """The OpenVINO predictor: nnU-Net's predictor initialised from the first fold alone (nnU-Net
        reads the trainer, the configuration and the mirroring axes from a checkpoint) for the plans,
        preprocessing and sliding window, and each fold's network compiled by OpenVINO (converted
        once per checkpoint and cached next to it). The other checkpoints are read only when their
        conversion is not cached, so a run neither reads nor holds five folds of torch weights per
        stage (66 MB each for the paper's U-Net, three times that with a trained fold's optimizer
        state) beside the OpenVINO ones."""
        from renal_nnunet.runtime.openvino import OpenVinoNetwork

        predictor = new_predictor(self.model_dir, self.folds[:1], "cpu", OpenVinoEnsemblePredictor,
                                  **PREDICTOR_SETTINGS)
        channels = len(predictor.dataset_json["channel_names"])
        self._template = (predictor.network, torch.zeros((1, channels, *predictor.configuration_manager.patch_size)))
        predictor.use_fold_networks([OpenVinoNetwork(self.fold_model(checkpoint), self.runtime.precision)
                                     for checkpoint in self.checkpoints])
        return predictor

    def fold_model(self, checkpoint: Path, precision: str | None = None):
        """The OpenVINO model of one fold at ``precision`` (default the stage's): the fp32
        conversion (also what bf16 compiles), or the INT8 model the stage's agreement was measured with."""
        from renal_nnunet.runtime.openvino import openvino_model, read_int8_model

        if (precision or self.runtime.precision) == "int8":
            return read_int8_model(checkpoint, self.agreement.calibration["sha256"])
        return openvino_model(checkpoint, functools.partial(self._build_torch_network, checkpoint))

    def _build_torch_network(self, checkpoint: Path) -> tuple:
        """(the fold's torch network, an example input at the patch size): what is converted."""
        network, example_input = self._template
        network.load_state_dict(load_checkpoint(checkpoint)["network_weights"])
        return network.eval(), example_input

    def grid_probabilities(self, grid_ct: sitk.Image, per_fold: bool = False) -> FoldProbabilities:
        """Class probabilities on a grid image, exactly as ``nnUNetv2_predict -f ...`` computes them.

        Args:
            grid_ct: a G^3 image made by ``prepare_grid_ct`` (or a converted dataset's image).
            per_fold: also compute each fold's own probabilities.

        Returns:
            float32 (C, G, G, G) probabilities (numpy z, y, x) of the ensemble (and of each fold).
        """
        return self.grid_probabilities_of_each([grid_ct], per_fold)[0]

    def grid_probabilities_of_each(self, grid_cts: Sequence[sitk.Image], per_fold: bool = False) -> list[FoldProbabilities]:
        """:meth:`grid_probabilities` of several grid images, each fold run on all of them in turn
        (loaded or compiled once, not once per image)."""
        prepared = [self._preprocess(grid_ct) for grid_ct in grid_cts]
        all_logits = self.predictor.predict_fold_logits_of_each([data for data, _ in prepared])
        results = []
        for index, (_, properties) in enumerate(prepared):
            fold_logits, all_logits[index] = all_logits[index], None  # each image's logits let go once used
            ensemble = self._probabilities(mean_logits(fold_logits), properties)
            folds = tuple(self._probabilities(logits, properties) for logits in fold_logits) if per_fold else ()
            results.append(FoldProbabilities(ensemble, folds))
        return results

    def _preprocess(self, grid_ct: sitk.Image) -> tuple:
        """nnU-Net's own preprocessing of one grid image (as ``nnUNetv2_predict`` runs it)."""
        predictor = self.predictor
        image = sitk.GetArrayFromImage(grid_ct)[None].astype(np.float32)
        properties = {"spacing": list(grid_ct.GetSpacing())[::-1]}
        preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case_npy(image, None, properties, predictor.plans_manager,
                                                        predictor.configuration_manager, predictor.dataset_json)
        return torch.from_numpy(np.ascontiguousarray(data)).float(), properties

    def _probabilities(self, logits: torch.Tensor, properties: dict) -> np.ndarray:
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

        predictor = self.predictor
        _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, properties,
            return_probabilities=True)
        return np.asarray(probabilities, dtype=np.float32)
