"""The four nnU-Net v2 raw datasets: names, per-case file names, dataset.json, splits.

Layout written under ``RAW`` (an ``nnUNet_raw`` folder), with ``N = first_id`` and ``G = grid``:

* ``Dataset{N}_RenalKidney{G}``: the CT's body box (:func:`renal_nnunet.anatomy.grid.body_box`) on the grid; 0 background, 1 right, 2 left kidney.
* ``Dataset{N+1}_RenalMass{G}``: one crop per kidney (``<case>_left``/``<case>_right``, the kidney's
  box + margin); 0 background, 1 mass (every tumour or cyst voxel inside the crop).
* ``Dataset{N+2}_RenalOneStage{G}``: the CT's body box on the grid; 0 background, 1 kidney, 2 mass.
* ``Dataset{N+3}_RenalOneStage``: native CT in HU; 0 background, 1 kidney, 2 mass.

Grid datasets hold ``sidecars/<case>.json`` (:class:`renal_nnunet.anatomy.geometry.GridSidecar`) beside
``imagesTr``; every dataset holds ``splits_final.json`` (see :mod:`.splits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS, MASS_STAGE_LABELS, ONE_STAGE_LABELS

__all__ = ["DatasetSpec", "dataset_specs", "image_file", "label_file", "sidecar_file", "write_dataset_json",
           "FILE_ENDING"]

FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class DatasetSpec:
    """One raw dataset: its folder name, labels and description."""

    key: str
    dataset_id: int
    name: str
    labels: dict[str, int]
    description: str
    on_grid: bool

    def folder(self, raw: Path) -> Path:
        return Path(raw) / f"Dataset{self.dataset_id:03d}_{self.name}"


def dataset_specs(first_id: int, grid: int) -> dict[str, DatasetSpec]:
    """The four datasets keyed ``kidney``, ``mass``, ``one_stage_grid``, ``one_stage_native``."""
    if not 1 <= first_id <= 996:
        raise ValueError(f"first_id must be 1..996 so that four 3-digit nnU-Net dataset ids fit, got {first_id}")
    window = "CT windowed to level 30 / width 300 HU, resized"
    return {spec.key: spec for spec in (
        DatasetSpec("kidney", first_id, f"RenalKidney{grid}", KIDNEY_STAGE_LABELS,
                    f"Whole {window} to {grid}^3; kidneys incl. sinus and masses, by side", True),
        DatasetSpec("mass", first_id + 1, f"RenalMass{grid}", MASS_STAGE_LABELS,
                    f"One crop per kidney (box + margin), {window} to {grid}^3; masses (tumour or cyst)", True),
        DatasetSpec("one_stage_grid", first_id + 2, f"RenalOneStage{grid}", ONE_STAGE_LABELS,
                    f"Whole {window} to {grid}^3; kidney and mass (one-stage ablation)", True),
        DatasetSpec("one_stage_native", first_id + 3, "RenalOneStage", ONE_STAGE_LABELS,
                    "Native CT in HU; kidney and mass (stock nnU-Net 3d_fullres baseline)", False),
    )}


def image_file(dataset_dir: Path, case: str) -> Path:
    return Path(dataset_dir) / "imagesTr" / f"{case}_0000{FILE_ENDING}"


def label_file(dataset_dir: Path, case: str) -> Path:
    return Path(dataset_dir) / "labelsTr" / f"{case}{FILE_ENDING}"


def sidecar_file(dataset_dir: Path, case: str) -> Path:
    return Path(dataset_dir) / "sidecars" / f"{case}.json"


def write_dataset_json(spec: DatasetSpec, raw: Path) -> int:
    """Write ``dataset.json`` for the cases present in ``labelsTr``; returns their number."""
    folder = spec.folder(raw)
    num_cases = len(list((folder / "labelsTr").glob(f"*{FILE_ENDING}")))
    generate_dataset_json(
        str(folder), channel_names={0: "CT"}, labels=spec.labels, num_training_cases=num_cases,
        file_ending=FILE_ENDING, dataset_name=folder.name, description=spec.description,
        reference="Zhao et al., Front. Oncol. 2023 (doi:10.3389/fonc.2023.1169922); KiTS21/KiTS23",
        license="as the source data (KiTS: CC BY-NC-SA 4.0)", converted_by="renal-nnunet convert",
        overwrite_image_reader_writer="SimpleITKIO",
    )
    return num_cases
