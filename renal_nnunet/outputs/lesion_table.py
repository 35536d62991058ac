"""The ``<case>_lesions.csv`` / ``.json`` tables: one row per predicted mass.

A row is a :class:`~renal_nnunet.outputs.records.LesionRecord` flattened (columns
:data:`LESION_TABLE_COLUMNS`), one per connected mass component of the pipeline's output. Units:
volume in ml, diameters and centroids in mm (centroid in ITK LPS patient coordinates: +x patient
left, +y posterior, +z superior), intensities in HU of the input CT; the nephrometry points are
integer columns, blank where a mass was not scored.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from renal_nnunet.io import atomic_path, write_json
from renal_nnunet.nephrometry.score import nephrometry_dtypes
from renal_nnunet.outputs.records import LesionRecord

__all__ = ["LESION_TABLE_COLUMNS", "write_lesion_tables"]

LESION_TABLE_COLUMNS: tuple[str, ...] = tuple(
    LesionRecord(0, "", 0, 0.0, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0), "").to_row().keys()
)


def write_lesion_tables(
    records: list[LesionRecord], csv_path: str | os.PathLike, json_path: str | os.PathLike, case_info: dict
) -> tuple[Path, Path]:
    """Write the lesion table as CSV (one row per lesion, header even when empty) and as JSON
    (``{"case": case_info, "lesions": [rows]}``; NaN written as null). Both writes are atomic.

    Floats are written at full precision (shortest repr that reads back to the same value): the
    evaluation links lesions by centroid and draws its ROC from the probabilities."""
    table = nephrometry_dtypes(pd.DataFrame([r.to_row() for r in records], columns=list(LESION_TABLE_COLUMNS)))
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.to_row().items()}
            for r in records]
    write_json({"case": case_info, "lesions": rows}, json_path)
    return Path(csv_path), Path(json_path)
