"""Fixtures: synthetic lesion crops in the converter's layout, and fresh held-out patches."""

from __future__ import annotations

from pathlib import Path

import pytest

from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.synthetic import make_lesion_patch
from tests.classification.lesion_data import HELD_OUT_SEEDS, PATCH_ZYX, TRAIN_SEEDS, write_lesion_folder


@pytest.fixture(scope="session")
def synthetic_lesions(tmp_path_factory) -> Path:
    """The training folder: 12 lesions per class, 3 patient folds."""
    return write_lesion_folder(tmp_path_factory.mktemp("RenalLesions"), TRAIN_SEEDS)


@pytest.fixture(scope="session")
def held_out_patches() -> list[tuple[str, object, object]]:
    """(kind, ct, lesion mask) of fresh synthetic patches (seeds not used for training)."""
    return [(kind, *make_lesion_patch(kind, seed, PATCH_ZYX)) for kind in LESION_CLASSES for seed in HELD_OUT_SEEDS]
