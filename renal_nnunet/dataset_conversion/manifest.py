"""Generic converter for an institution's own data, described by a CSV manifest.

Columns (one row per CT series):

* ``patient_id`` (required): series of one patient share a cross-validation fold.
* ``series_id`` (required): the case is named ``<patient_id>_<series_id>`` (characters other than
  letters, digits, ``-`` and ``.`` become ``_``).
* ``image``, ``label`` (required): CT in HU and its label map (paths relative to the CSV's folder).
* ``label_values`` (optional): what the label values mean, e.g. ``1=kidney;2=tumor;3=cyst`` (the
  KiTS default when empty). Names: ``kidney``, ``tumor`` (class from ``subtype``), ``cyst``, and
  per-lesion classes ``AML``, ``cystic``, ``solid``; 0 is always background.
* ``subtype`` (optional): the patient's tumour histology (KiTS21 or KiTS23 spelling) for ``tumor``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from renal_nnunet.dataset_conversion.convert import ConversionConfig, ConversionReport, convert_cases
from renal_nnunet.dataset_conversion.kits import normalise_subtype
from renal_nnunet.dataset_conversion.sources import KITS_LABEL_VALUES, LABEL_NAMES, SourceCase
from renal_nnunet.io import InputError

__all__ = ["read_manifest", "convert_manifest", "parse_label_values", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("patient_id", "series_id", "image", "label")


def parse_label_values(text: str) -> dict[int, str]:
    """Parse ``"1=kidney;2=tumor"`` into ``{0: 'background', 1: 'kidney', 2: 'tumor'}``.

    >>> parse_label_values("1=kidney; 4=AML")
    {0: 'background', 1: 'kidney', 4: 'AML'}

    Raises:
        ValueError: malformed pair or a name outside ``LABEL_NAMES``.
    """
    values = {0: "background"}
    for pair in filter(None, (p.strip() for p in str(text).split(";"))):
        match = re.fullmatch(r"(\d+)\s*=\s*(\w+)", pair)
        if not match or match.group(2) not in LABEL_NAMES:
            raise ValueError(f"label_values entry {pair!r} is not VALUE=NAME with NAME in {list(LABEL_NAMES[1:])}")
        values[int(match.group(1))] = match.group(2)
    return values


def read_manifest(csv_path: str | Path) -> list[SourceCase]:
    """One :class:`SourceCase` per manifest row; a row with bad ``label_values`` fails alone.

    Raises:
        InputError: unreadable CSV, missing required columns, or duplicate case names.
    """
    csv_path = Path(csv_path)
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise InputError(csv_path, f"cannot be read as CSV: {err}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(csv_path, f"missing columns {missing}; required are {list(REQUIRED_COLUMNS)}")
    cases = []
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        case_id = re.sub(r"[^A-Za-z0-9.\-]", "_", f"{row['patient_id']}_{row['series_id']}")
        problem, label_values = None, dict(KITS_LABEL_VALUES)
        if row.get("label_values", "").strip():
            try:
                label_values = parse_label_values(row["label_values"])
            except ValueError as err:
                problem = f"row {row_number}: {err}"
        cases.append(SourceCase(
            case_id=case_id,
            patient_id=str(row["patient_id"]),
            image_path=csv_path.parent / row["image"],
            label_path=csv_path.parent / row["label"],
            subtype=normalise_subtype(row.get("subtype")),
            label_values=label_values,
            problem=problem,
            problem_path=csv_path if problem else None,
        ))
    names = [c.case_id for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(csv_path, f"patient_id/series_id pairs give duplicate case names {duplicates}")
    return cases


def convert_manifest(csv_path: str | Path, out_raw: str | Path, config: ConversionConfig = ConversionConfig()) -> ConversionReport:
    """Convert the series of a CSV manifest into the four raw datasets (see :func:`convert_cases`)."""
    return convert_cases(read_manifest(csv_path), out_raw, config)
