"""A cohort converted in parts (e.g. a cluster's array jobs), then finished once every part is done.

Each part converts its share of the cases (``cases[part_id::num_parts]``, as ``nnUNetv2_predict``
splits its inputs) and writes only per-case files and records, plus
``RAW/.renal_nnunet/parts/part_<K>.json`` (its case ids and outcome). The dataset-wide files need
the whole cohort (patient-grouped splits, ``dataset.json``, the lesion table with each patient's
fold), so :func:`finalize_parts` writes them, refusing while a part is missing: the finished
folder is what a one-part conversion writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from renal_nnunet.dataset_conversion.convert import (
    RECORDS_DIR,
    ConversionConfig,
    ConversionReport,
    convert_batch,
    finalize,
    require_unique_case_ids,
)
from renal_nnunet.dataset_conversion.sources import SourceCase
from renal_nnunet.io import InputError, select_part, write_json

__all__ = ["convert_part", "finalize_parts", "PARTS_DIR"]

PARTS_DIR = "parts"
"""Folder of the part records, under ``RAW/.renal_nnunet/``."""


def _parts_folder(out_raw: Path) -> Path:
    return out_raw / RECORDS_DIR / PARTS_DIR


def convert_part(cases: list[SourceCase], out_raw: str | Path, config: ConversionConfig, num_parts: int,
                 part_id: int) -> ConversionReport:
    """Convert part ``part_id`` (0-based) of ``num_parts`` of a cohort, without the dataset-wide files.

    Raises:
        ValueError: ``part_id`` not in ``[0, num_parts)``.
        InputError: as :func:`renal_nnunet.dataset_conversion.convert.convert_cases`.
    """
    started = time.perf_counter()
    out_raw = Path(out_raw)
    require_unique_case_ids(cases)
    share = select_part(cases, num_parts, part_id)
    report = convert_batch(share, out_raw, config)
    write_json({"num_parts": num_parts, "part_id": part_id, "cases": [c.case_id for c in share],
                "converted": report.converted, "skipped": report.skipped, "failed": report.failed},
               _parts_folder(out_raw) / f"part_{part_id}.json")
    report.notes.append(f"part {part_id} of {num_parts} converted; once every part is, run the same command with "
                        "--finalize instead of --num-parts/--part-id")
    report.seconds = time.perf_counter() - started
    return report


def finalize_parts(cases: list[SourceCase], out_raw: str | Path, config: ConversionConfig) -> ConversionReport:
    """Write the splits, ``dataset.json`` files, lesion table and report of a cohort converted in parts.

    Args:
        cases: the whole cohort, as the parts were given it.
        out_raw: the raw folder the parts wrote into.
        config: the parts' conversion options.

    Returns:
        The report of the whole cohort (each case's outcome from its part).

    Raises:
        InputError: no part converted yet, a part missing, parts run with different numbers of
            parts, or cases of the cohort that no part converted (the source changed).
    """
    started = time.perf_counter()
    out_raw = Path(out_raw)
    require_unique_case_ids(cases)
    parts = {}
    for path in sorted(_parts_folder(out_raw).glob("part_*.json")):
        record = json.loads(path.read_text())
        parts[record["part_id"]] = record
    if not parts:
        raise InputError(_parts_folder(out_raw), "no converted part found: run convert with --num-parts N "
                                                 "--part-id K for every K first")
    counts = sorted({record["num_parts"] for record in parts.values()})
    if len(counts) != 1:
        raise InputError(_parts_folder(out_raw), f"parts were converted with different --num-parts {counts}; "
                                                 "convert every part with the same number")
    missing = sorted(set(range(counts[0])) - set(parts))
    if missing:
        raise InputError(_parts_folder(out_raw), f"part(s) {missing} of {counts[0]} are not converted yet; "
                                                 "run them, then --finalize again")
    status = {case_id: kind for record in parts.values() for kind in ("converted", "skipped")
              for case_id in record[kind]}
    failed = {case_id: message for record in parts.values() for case_id, message in record["failed"].items()}
    uncovered = [c.case_id for c in cases if c.case_id not in status and c.case_id not in failed]
    if uncovered:
        raise InputError(_parts_folder(out_raw), f"cases {uncovered} are in the source but in no converted part "
                                                 "(did the source change?); convert the parts again")
    report = ConversionReport(failed={c.case_id: failed[c.case_id] for c in cases if c.case_id in failed})
    for case in cases:
        if case.case_id in status:
            getattr(report, status[case.case_id]).append(case.case_id)
    finalize(out_raw, config, report)
    report.seconds = time.perf_counter() - started
    return report
