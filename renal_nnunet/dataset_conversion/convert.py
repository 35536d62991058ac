"""Batch conversion: every case independently, failures collected, re-runs skip unchanged cases.

Per case (:func:`convert_case`) the outputs are built in memory, then written atomically; if any
write fails the case's files are removed again. A record ``RAW/.renal_nnunet/<case>.json`` holds
the case's fingerprint (input sizes and mtimes, subtype, label meanings, options, package version),
its files and lesion rows; a re-run with the same fingerprint and all files present skips the case.
After the batch, :func:`finalize` rebuilds ``dataset.json``, ``splits_final.json`` and
``RAW/RenalLesions/lesions.csv`` from all records, and ``RAW/conversion_report.json`` lists
failures.

``lesions.csv`` has one row per 26-connected component of tumour or cyst (native resolution):
``case_id, patient_id, side`` (of the kidney it lies in), ``lesion_id`` (1..N by decreasing volume),
``source_label`` (label names in it, e.g. ``tumor`` or ``cyst+tumor``), ``lesion_class``
(AML/cystic/solid/unknown, from the majority label, see :func:`.lesion_classes.lesion_class`),
``class_evidence`` (label/pathology/none), ``subtype``, ``voxel_count``, ``volume_ml``,
``average_diameter_mm`` (see :mod:`.lesions`), ``centroid_{x,y,z}_mm`` (LPS), ``bbox_start`` and
``bbox_size`` (voxels, ITK x y z, space-separated) and ``fold`` (validation fold of the patient in
``splits_final.json``; -1 without splits). Its classifier crop is
``RAW/RenalLesions/crops/<case_id>_<lesion_id>.nii.gz`` (:func:`.crops.lesion_crop`: windowed HU,
-120 outside the outline, resized to the grid).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from renal_nnunet.anatomy.crops import LESIONS_DIR
from renal_nnunet.anatomy.sinus import SINUS_CLOSING_RADIUS_MM
from renal_nnunet.dataset_conversion.case import build_case_outputs
from renal_nnunet.dataset_conversion.kits import find_kits_cases
from renal_nnunet.dataset_conversion.nnunet_dataset import (
    dataset_specs,
    image_file,
    label_file,
    sidecar_file,
    write_dataset_json,
)
from renal_nnunet.dataset_conversion.sources import SourceCase
from renal_nnunet.io import InputError, atomic_path, write_image, write_json
from renal_nnunet.nnunet.splits import patient_folds, write_splits
from renal_nnunet.settings import PAPER

__all__ = ["ConversionConfig", "ConversionReport", "convert_kits", "convert_cases", "convert_batch", "convert_case",
           "finalize", "require_unique_case_ids", "RECORDS_DIR"]

log = logging.getLogger(__name__)

RECORDS_DIR = ".renal_nnunet"
REPORT_FILE = "conversion_report.json"


@dataclass(frozen=True)
class ConversionConfig:
    """Conversion options.

    Attributes:
        first_id: nnU-Net id of the kidney dataset; the others take the next three ids.
        grid: grid edge in voxels for the grid datasets and lesion crops (paper: 128).
        margin_mm: margin around each kidney's bounding box for the mass crops, mm.
        sinus_radius_mm: closing radius of the sinus fill, mm.
        workers: parallel processes (1 = in this process).
    """

    first_id: int = 501
    grid: int = PAPER.grid
    margin_mm: float = PAPER.kidney_margin_mm
    sinus_radius_mm: float = SINUS_CLOSING_RADIUS_MM
    workers: int = 1

    def __post_init__(self):
        dataset_specs(self.first_id, self.grid)  # raises on ids that do not fit
        if self.grid < 2 or self.margin_mm < 0 or self.sinus_radius_mm <= 0 or self.workers < 1:
            raise ValueError(f"invalid conversion options {self}: need grid >= 2, margin_mm >= 0, "
                             "sinus_radius_mm > 0, workers >= 1")

    def fingerprint_fields(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "workers"}


@dataclass
class ConversionReport:
    """Outcome of a batch: converted/skipped case ids, failures (case -> message), paths."""

    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, Path] = field(default_factory=dict)
    lesions_csv: Path | None = None
    report_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"converted {len(self.converted)}, skipped (unchanged) {len(self.skipped)}, failed {len(self.failed)}"
                 f" in {self.seconds:.1f} s"]
        lines += [f"  dataset {path}" for path in self.datasets.values()]
        if self.lesions_csv:
            lines.append(f"  lesion table {self.lesions_csv}")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  FAILED {case}: {message}" for case, message in sorted(self.failed.items())]
        return "\n".join(lines)


def convert_kits(src: str | Path, out_raw: str | Path, config: ConversionConfig = ConversionConfig()) -> ConversionReport:
    """Convert a KiTS21 ``data/`` or KiTS23 ``dataset/`` folder into the four raw datasets.

    Raises:
        InputError: no metadata or case folders in ``src``, or ``out_raw`` cannot be written.
    """
    return convert_cases(find_kits_cases(src), out_raw, config)


def convert_cases(cases: list[SourceCase], out_raw: str | Path, config: ConversionConfig) -> ConversionReport:
    """Convert ``cases`` (each on its own; failures are collected), then :func:`finalize`."""
    started = time.perf_counter()
    out_raw = Path(out_raw)
    report = convert_batch(cases, out_raw, config)
    finalize(out_raw, config, report)
    report.seconds = time.perf_counter() - started
    log.debug(report.summary())  # the CLI prints it; a library caller has the report
    return report


def require_unique_case_ids(cases: list[SourceCase]) -> None:
    """Raise ``InputError`` if two source cases share a case id."""
    duplicates = sorted({c.case_id for c in cases if sum(d.case_id == c.case_id for d in cases) > 1})
    if duplicates:
        raise InputError(None, f"case ids occur more than once: {duplicates}")


def convert_batch(cases: list[SourceCase], out_raw: Path, config: ConversionConfig) -> ConversionReport:
    """Convert each of ``cases`` (records and files, no dataset-wide files); failures are collected."""
    _require_writable(out_raw)
    require_unique_case_ids(cases)
    report = ConversionReport()
    if config.workers == 1:
        results = ((case, _convert_case_safely(case, out_raw, config)) for case in cases)
        _collect(tqdm(results, total=len(cases), desc="convert", unit="case"), report)
    else:
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            futures = {pool.submit(_convert_case_safely, case, out_raw, config): case for case in cases}
            done = ((futures[f], f.result()) for f in as_completed(futures))
            _collect(tqdm(done, total=len(cases), desc="convert", unit="case"), report)
    return report


def _collect(results, report: ConversionReport) -> None:
    for case, (status, message) in results:
        if status == "failed":
            log.error("%s: %s", case.case_id, message)
            report.failed[case.case_id] = message
        else:
            getattr(report, status).append(case.case_id)


def _convert_case_safely(case: SourceCase, out_raw: Path, config: ConversionConfig) -> tuple[str, str]:
    """(``converted`` | ``skipped`` | ``failed``, message); never raises, so a batch goes on."""
    try:
        return convert_case(case, out_raw, config), ""
    except InputError as err:
        return "failed", str(err)
    except OSError as err:
        # os.replace(temporary, target) names the target second: report the file the user knows.
        return "failed", f"{err.filename2 or err.filename or case.case_id}: cannot be written ({err.strerror or err})"
    except Exception as err:  # a bug or an odd file must not stop the other cases
        log.exception("unexpected error converting %s", case.case_id)
        return "failed", f"{case.image_path}: {type(err).__name__}: {err}"


def convert_case(case: SourceCase, out_raw: Path, config: ConversionConfig) -> str:
    """Convert one case unless an identical conversion exists; returns ``converted`` or ``skipped``.

    Raises:
        InputError: bad input (the message names the file); OSError: the output cannot be written.
    """
    record_path = out_raw / RECORDS_DIR / f"{case.case_id}.json"
    fingerprint = _fingerprint(case, config)
    record = _read_record(record_path)
    if record and record.get("fingerprint") == fingerprint and all((out_raw / f).is_file() for f in record["files"]):
        return "skipped"
    _remove_case(out_raw, record)
    record_path.unlink(missing_ok=True)
    outputs = build_case_outputs(case, config.grid, config.margin_mm, config.sinus_radius_mm)
    specs = dataset_specs(config.first_id, config.grid)
    written: list[Path] = []
    try:
        for (key, name), (image, label) in outputs.images.items():
            folder = specs[key].folder(out_raw)
            written.append(write_image(image, image_file(folder, name)))
            written.append(write_image(label, label_file(folder, name)))
        for (key, name), sidecar in outputs.sidecars.items():
            written.append(sidecar.to_json(sidecar_file(specs[key].folder(out_raw), name)))
        for name, crop in outputs.crops.items():
            written.append(write_image(crop, out_raw / LESIONS_DIR / "crops" / f"{name}.nii.gz"))
        files = [str(p.relative_to(out_raw)) for p in written]
        write_json({"fingerprint": fingerprint, "patient_id": case.patient_id, "files": files,
                    "lesions": outputs.lesion_rows}, record_path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return "converted"


def finalize(out_raw: Path, config: ConversionConfig, report: ConversionReport) -> None:
    """Remove failed cases' old outputs, then write dataset.json, splits, lesions.csv, the report."""
    for case_id in report.failed:
        record_path = out_raw / RECORDS_DIR / f"{case_id}.json"
        _remove_case(out_raw, _read_record(record_path))
        record_path.unlink(missing_ok=True)
    records = {p.stem: r for p in sorted((out_raw / RECORDS_DIR).glob("*.json")) if (r := _read_record(p))}
    specs = dataset_specs(config.first_id, config.grid)
    if records:
        for key, spec in specs.items():
            write_dataset_json(spec, out_raw)
            report.datasets[key] = spec.folder(out_raw)
    patients = {case_id: record["patient_id"] for case_id, record in records.items()}
    folds = _folds_or_note(patients, report)
    if folds:
        for key, spec in specs.items():
            folder = spec.folder(out_raw)
            names = {Path(f).name.removesuffix(".nii.gz"): case_id for case_id, record in records.items()
                     for f in record["files"] if f.startswith(f"{folder.name}/labelsTr/")}
            write_splits(folder, {name: patients[case_id] for name, case_id in names.items()}, folds)
    rows = [row for record in records.values() for row in record["lesions"]]
    if records:
        table = pd.DataFrame(rows, columns=_LESION_COLUMNS)
        table["fold"] = [folds.get(p, -1) if folds else -1 for p in table["patient_id"]]
        report.lesions_csv = out_raw / LESIONS_DIR / "lesions.csv"
        report.lesions_csv.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(report.lesions_csv) as tmp:
            table.to_csv(tmp, index=False)
    report.report_path = write_json(
        {"converted": report.converted, "skipped": report.skipped, "failed": report.failed,
         "datasets": {k: str(v) for k, v in report.datasets.items()}, "notes": report.notes,
         "config": asdict(config)}, out_raw / REPORT_FILE)


_LESION_COLUMNS = ["case_id", "patient_id", "side", "lesion_id", "source_label", "lesion_class", "class_evidence",
                   "subtype", "voxel_count", "volume_ml", "average_diameter_mm", "centroid_x_mm", "centroid_y_mm",
                   "centroid_z_mm", "bbox_start", "bbox_size"]


def _folds_or_note(patients: dict[str, str], report: ConversionReport) -> dict[str, int]:
    try:
        return patient_folds(patients.values())
    except ValueError as err:
        report.notes.append(f"no splits_final.json written: {err}")
        return {}


def _fingerprint(case: SourceCase, config: ConversionConfig) -> str:
    def stat(path: Path):
        try:
            s = path.stat()
            return [str(path.resolve()), s.st_size, s.st_mtime_ns]
        except OSError:
            return [str(path), None, None]

    content = {"image": stat(case.image_path), "label": stat(case.label_path), "subtype": case.subtype,
               "patient": case.patient_id, "labels": sorted(case.label_values.items()), "problem": case.problem,
               "config": config.fingerprint_fields(), "version": importlib.metadata.version("renal_nnunet")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _remove_case(out_raw: Path, record: dict | None) -> None:
    for name in (record or {}).get("files", []):
        (out_raw / name).unlink(missing_ok=True)


def _require_writable(out_raw: Path) -> None:
    try:
        out_raw.mkdir(parents=True, exist_ok=True)
        probe = out_raw / f".write_test_{time.time_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(out_raw, f"output folder is not writable ({err.strerror or err})") from None
