"""Shared test fixtures.

The real KiTS23 label maps are read from ``../shared/kits23`` beside the checkout, or from the
folder named by ``RENAL_KITS23_DIR``. A missing folder fails the tests that need it (never skips).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def kits23_dir() -> Path:
    """Folder holding KiTS23's ``dataset/`` (README, ``dataset/kits23.json``, case folders)."""
    return Path(os.environ.get("RENAL_KITS23_DIR", REPO_ROOT.parent / "shared" / "kits23"))


@pytest.fixture(scope="session")
def kits23_dataset() -> Path:
    """The real KiTS23 ``dataset/`` folder (label maps + kits23.json)."""
    root = kits23_dir()
    dataset = root / "dataset" if (root / "dataset").is_dir() else root
    if not (dataset / "kits23.json").is_file():
        pytest.fail(f"real KiTS23 labels not found at {dataset}; set RENAL_KITS23_DIR to the folder holding dataset/")
    return dataset


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch) -> dict[str, Path]:
    """Point nnU-Net's three folders at a temporary directory (and keep its worker pools small)."""
    folders = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, folder in folders.items():
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    return folders
