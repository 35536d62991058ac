"""A stage's measured agreement of reduced precisions with fp32: the bounds, the record, its file.

``compile-models --precision int8|bf16`` measures each stage (kidney U-Net, mass U-Net,
classifier) on held-out cases and writes :data:`AGREEMENT_FILE` into the stage's folder (the
nnU-Net trained-model folder, or the classifier's folder). The record names the SHA-256 of every
checkpoint it was measured with: :func:`read_stage_agreement` ignores a record whose checkpoints
changed since, so a retrained fold is never run quantised on an old measurement
(:meth:`renal_nnunet.runtime.backends.Runtime.for_stage` decides from it).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from renal_nnunet.io import file_sha256, write_json

__all__ = ["AGREEMENT_FILE", "AgreementBounds", "PrecisionCheck", "StageAgreement", "checkpoint_hashes",
           "read_stage_agreement", "write_stage_agreement"]

log = logging.getLogger(__name__)

AGREEMENT_FILE = "precision_agreement.json"


@dataclass(frozen=True)
class AgreementBounds:
    """What a reduced precision must reach against fp32 on held-out cases to be used by ``auto``.

    Attributes:
        kidney_dice: kidney stage, Dice of each label (right, left kidney) on every case.
        mass_dice: mass stage, Dice of the mass label on every case.
        same_masses: mass stage, the same 26-connected masses detected, one to one (no mass found
            by one precision and not the other, none two masses in the other or split in two).
        class_agreement: classifier, share of lesions whose ensemble class equals fp32's.
        cam_peak_voxels: classifier, distance (crop grid voxels) between the Grad-CAM peaks of
            fp32 and the reduced precision, on every lesion.
    """

    kidney_dice: float = 0.99
    mass_dice: float = 0.95
    same_masses: bool = True
    class_agreement: float = 0.95
    cam_peak_voxels: float = 1.0


@dataclass(frozen=True)
class PrecisionCheck:
    """One precision's agreement with fp32 for one stage.

    Attributes:
        precision: ``int8`` or ``bf16``.
        passed: every bound met.
        failures: each bound missed, in words (empty when passed).
        cases: held-out cases (lesions for the classifier) measured.
        figures: the measured values (worst case and mean of each metric).
    """

    precision: str
    passed: bool
    failures: tuple[str, ...]
    cases: int
    figures: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StageAgreement:
    """The agreement record of one stage (what :data:`AGREEMENT_FILE` holds).

    Attributes:
        checkpoints_sha256: SHA-256 of each checkpoint measured, by file name relative to the
            stage folder.
        calibration: the INT8 calibration set (``source``, ``cases``, ``held_out``, ``sha256``,
            ``accuracy_control``: its cases and largest Dice drop, or None).
        checks: by precision.
        cpu: the CPU the agreement was measured on (:func:`renal_nnunet.runtime.cpu.cpu_description`).
    """

    checkpoints_sha256: dict[str, str]
    calibration: dict
    checks: dict[str, PrecisionCheck]
    cpu: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def checkpoint_hashes(folder: str | os.PathLike, checkpoints: Sequence[str | os.PathLike]) -> dict[str, str]:
    """SHA-256 of each checkpoint, by its path relative to ``folder`` (posix)."""
    folder = Path(folder).resolve()
    return {Path(c).resolve().relative_to(folder).as_posix(): file_sha256(c) for c in checkpoints}


def write_stage_agreement(folder: str | os.PathLike, agreement: StageAgreement) -> Path:
    """Write a stage's record into ``folder`` (atomic); returns the file."""
    return write_json(agreement.to_dict(), Path(folder) / AGREEMENT_FILE)


def read_stage_agreement(folder: str | os.PathLike, checkpoints: Sequence[str | os.PathLike]) -> StageAgreement | None:
    """The stage's record when it was measured with exactly these checkpoints' contents, else None
    (no record, or a checkpoint was changed or added since: the record is stale)."""
    path = Path(folder) / AGREEMENT_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    recorded = data.get("checkpoints_sha256", {})
    current = checkpoint_hashes(folder, checkpoints)
    if any(recorded.get(name) != digest for name, digest in current.items()):
        log.warning("%s was measured with other checkpoints: ignored (run compile-models again)", path)
        return None
    checks = {name: PrecisionCheck(**{**check, "failures": tuple(check["failures"])})
              for name, check in data.get("checks", {}).items()}
    return StageAgreement(recorded, data.get("calibration", {}), checks, data.get("cpu", {}))
