"""What a models folder was trained on: the manifest's ``training`` entry.

:func:`renal_nnunet.pipeline.models.assemble_models` writes it; the run record of a prediction
(:mod:`renal_nnunet.pipeline.provenance`) reads the manifest. Kept apart from both so that the
models folder and the run record do not import each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from renal_nnunet.nnunet.layout import fold_dir

__all__ = ["TRAINING_DATA_KINDS", "training_provenance"]

TRAINING_DATA_KINDS = ("synthetic", "real", "unknown")


def _stage_provenance(model_dir: Path, folds: Sequence[int]) -> dict:
    """nnU-Net dataset name, training case count, trainer, epochs and iterations per epoch of one
    stage (the last two from nnU-Net's ``fold_k/debug.json``; None when it is absent)."""
    dataset = json.loads((model_dir / "dataset.json").read_text())
    debug_file = fold_dir(model_dir, folds[0]) / "debug.json"
    debug = json.loads(debug_file.read_text()) if debug_file.is_file() else {}
    return {"dataset": str(dataset.get("name", model_dir.parent.name)), "cases": int(dataset.get("numTraining", 0)),
            "trainer": model_dir.name.split("__")[0],
            **{key: int(debug[key]) if key in debug else None for key in ("num_epochs", "num_iterations_per_epoch")}}


def training_provenance(kidney_model_dir: Path, mass_model_dir: Path, folds: Sequence[int], grid: int,
                        data: str) -> dict:
    """What a models folder was trained on, for the manifest's ``training`` entry.

    Raises:
        ValueError: ``data`` is not one of :data:`TRAINING_DATA_KINDS`.
    """
    if data not in TRAINING_DATA_KINDS:
        raise ValueError(f"training data must be one of {TRAINING_DATA_KINDS}, got {data!r}")
    return {"data": data, "grid": int(grid), "kidney": _stage_provenance(Path(kidney_model_dir), folds),
            "mass": _stage_provenance(Path(mass_model_dir), folds)}
