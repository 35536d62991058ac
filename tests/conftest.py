"""Shared test fixtures.

The real KiTS23 label maps are read from ``../shared/kits23`` beside the checkout, or from the
folder named by ``RENAL_KITS23_DIR``; the real CT series from ``../shared/realct``, or from the
folder named by ``RENAL_REALCT_DIR``. A missing folder fails the tests that need it (never skips).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from renal_nnunet.pipeline.demo import DemoConfig, DemoSummary, run_demo

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


def realct_dir() -> Path:
    """Folder holding the real CT series ``pancreas_ct_cb001/`` (see its README)."""
    return Path(os.environ.get("RENAL_REALCT_DIR", REPO_ROOT.parent / "shared" / "realct"))


@pytest.fixture(scope="session")
def realct_series() -> Path:
    """The real CT series folder: 134 axial slices ``1-001.dcm``... of a de-identified abdominal CT
    (TCIA Pancreatic-CT-CBCT-SEG, patient Pancreas-CT-CB_001), Implicit VR Little Endian. Read only."""
    root = realct_dir()
    series = root / "pancreas_ct_cb001" if (root / "pancreas_ct_cb001").is_dir() else root
    if not (series / "1-001.dcm").is_file():
        pytest.fail(f"the real CT series was not found at {series}; set RENAL_REALCT_DIR to the folder holding "
                    "pancreas_ct_cb001/")
    return series


INPLANE_DOWNSAMPLE = 8


@pytest.fixture(scope="session")
def painted_kits23(kits23_dataset, tmp_path_factory) -> Path:
    """All 32 real KiTS23 label maps with painted CT, KiTS23 layout (the SRC ``dataset/`` folder)."""
    from renal_nnunet.synthetic import write_painted_kits

    return write_painted_kits(kits23_dataset, tmp_path_factory.mktemp("painted"), inplane_downsample=INPLANE_DOWNSAMPLE)


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


# --- A tiny fixed-grid dataset shared by the trainer, nnU-Net-command and inference tests.
# Eight synthetic phantoms (renal_nnunet.synthetic) converted by `renal-nnunet convert`'s library
# function on a 32^3 grid: the same datasets (kidney, mass, one-stage) a user trains the paper's
# models on, small enough for CPU tests.

GRID = 32
FIRST_ID = 801
KIDNEY_DATASET = f"Dataset{FIRST_ID}_RenalKidney{GRID}"
BIN = Path(sys.executable).parent
TINY = "nnUNetTrainerRenalPaper_CPUtiny"
SMOKE = "nnUNetTrainerRenalPaper_CPUsmoke"  # 1 epoch x 5 iterations: a trained model, not a good one
TEST_ENV = {"nnUNet_n_proc_DA": "1", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false"}


@pytest.fixture(scope="session")
def tiny_grid_raw(tmp_path_factory) -> Path:
    """nnU-Net raw folder holding the converter's datasets (ids 801-804) for 8 phantoms."""
    from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
    from renal_nnunet.synthetic import write_synthetic_kits

    root = tmp_path_factory.mktemp("tiny_grid")
    src = write_synthetic_kits(root / "kits", 8, layout="kits23", seed=0, shape_zyx=(40, 64, 64),
                               spacing_zyx_mm=(6.0, 5.0, 5.0))
    report = convert_kits(src, root / "nnUNet_raw", ConversionConfig(first_id=FIRST_ID, grid=GRID))
    assert report.ok, report.summary()
    return root / "nnUNet_raw"


def nnunet_folders(root: Path, raw: Path) -> dict[str, str]:
    """nnU-Net's three folder variables (raw shared, the other two under ``root``) + small pools."""
    folders = {"nnUNet_raw": str(raw), "nnUNet_preprocessed": str(root / "preprocessed"),
               "nnUNet_results": str(root / "results")}
    for folder in folders.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    return {**folders, **TEST_ENV}


@pytest.fixture(scope="session")
def planned_tiny_kidney(tiny_grid_raw, tmp_path_factory) -> dict[str, str]:
    """The 32^3 kidney dataset planned by stock ``nnUNetv2_plan_and_preprocess
    --verify_dataset_integrity`` (a subprocess), with the converter's splits installed.

    Returns nnU-Net's folder variables for it (results start empty; tests train distinct folds).
    """
    from renal_nnunet.nnunet.splits import install_splits

    env = nnunet_folders(tmp_path_factory.mktemp("planned"), tiny_grid_raw)
    run_command(env, BIN / "nnUNetv2_plan_and_preprocess", "-d", FIRST_ID, "-c", "3d_fullres",
                "--verify_dataset_integrity", "-np", "1", "-npfp", "1")
    install_splits(tiny_grid_raw / KIDNEY_DATASET, Path(env["nnUNet_preprocessed"]) / KIDNEY_DATASET)
    return env


def run_command(env: dict[str, str], *command) -> str:
    """Run a command with ``env`` added to the environment; fail with its output's tail."""
    # nnU-Net's progress bars are UTF-8 whatever the locale, so decode explicitly (CI may run under C/ASCII).
    done = subprocess.run([str(c) for c in command], env=subprocess_env(env), capture_output=True,
                          encoding="utf-8", errors="replace", timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture
def use_env(monkeypatch):
    """Apply an environment dict for one test (and make sure no user trainer folder leaks in)."""
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)

    def apply(env: dict[str, str]) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    """The current environment plus ``env``, for stock nnU-Net commands run as subprocesses."""
    return {**{k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}, **env}


@pytest.fixture(scope="session")
def heldout_cases(tmp_path_factory) -> dict:
    """Two phantoms the models never train on, on their own voxel grid (not the training one),
    converted like the training data: the grid images nnU-Net predicts, their sidecars, and the
    source CTs with their kidney references (kidney-stage definition: kidney incl. sinus and masses).
    """
    from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
    from renal_nnunet.synthetic import write_synthetic_kits

    root = tmp_path_factory.mktemp("heldout")
    src = write_synthetic_kits(root / "kits", 2, layout="kits23", seed=1000, shape_zyx=(36, 70, 60),
                               spacing_zyx_mm=(6.5, 4.6, 5.2))
    report = convert_kits(src, root / "raw", ConversionConfig(first_id=901, grid=GRID))
    assert report.ok, report.summary()
    kidney = root / "raw" / f"Dataset901_RenalKidney{GRID}"
    native = root / "raw" / "Dataset904_RenalOneStage"
    cases = sorted(p.name for p in src.iterdir() if p.is_dir())
    return {
        "raw": root / "raw",
        "grid_images": kidney / "imagesTr",
        "sidecars": kidney / "sidecars",
        "cases": cases,
        "ct": {case: src / case / "imaging.nii.gz" for case in cases},
        "kidney_reference": {case: native / "labelsTr" / f"{case}.nii.gz" for case in cases},
    }


def dice(a, b) -> float:
    """Dice of two boolean arrays (1.0 if both are empty)."""
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


# --- A tiny demo run shared by the pipeline and reliability tests: real synthetic data, conversion,
# nnU-Net planning, training of the kidney, mass and classifier models (100 iterations per U-Net),
# prediction and evaluation. Its ``models`` folder is what the end-to-end tests predict with.

TINY_DEMO = DemoConfig(cases=5, test_cases=1, grid=32, minutes=2.0, generator="ellipsoid", shape_zyx=(26, 27, 36),
                       spacing_zyx_mm=(10.0, 10.0, 10.0), seed=7)
CONSOLE_FILE = "tiny_demo_console.txt"
"""What the tiny demo showed on the console (next to its output folder)."""


@contextlib.contextmanager
def console_like_the_cli(path: Path) -> Iterator[None]:
    """Within the block, stdout, stderr and INFO log records go to ``path``, as ``renal-nnunet``'s
    console shows them (its ``logging.basicConfig`` handler and format)."""
    root = logging.getLogger()
    previous_level = root.level
    with open(path, "w", encoding="utf-8") as console:
        handler = logging.StreamHandler(console)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
                yield
        finally:
            root.removeHandler(handler)
            root.setLevel(previous_level)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> tuple[Path, DemoSummary]:
    """``(out_dir, summary)`` of a tiny demo run (its models folder is ``out_dir / "models"``; what
    it showed on the console is ``out_dir.parent / CONSOLE_FILE``)."""
    out_dir = tmp_path_factory.mktemp("tiny_demo")
    with console_like_the_cli(out_dir.parent / CONSOLE_FILE):
        summary = run_demo(out_dir, TINY_DEMO)
    return out_dir, summary
