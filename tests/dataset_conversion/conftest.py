"""Shared, session-scoped inputs for the conversion tests (kept small: 2 CPU cores in CI).

Conversions run on a grid of 32, on the painted KiTS23 cases of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits

TEST_GRID = 32
SUBSET = ("case_00017", "case_00106", "case_00194", "case_00263", "case_00521", "case_00582")
"""AML patient, multilocular cystic RCC, single kidney, three kidney-like components, subtype cyst,
many tumours."""


def copy_cases(src: Path, dst: Path, case_ids, metadata_name: str = "kits23.json") -> Path:
    """A KiTS folder holding only ``case_ids`` of ``src`` (metadata filtered alike)."""
    dst.mkdir(parents=True, exist_ok=True)
    for case_id in case_ids:
        shutil.copytree(src / case_id, dst / case_id)
    records = [r for r in json.loads((src / metadata_name).read_text()) if r["case_id"] in case_ids]
    (dst / metadata_name).write_text(json.dumps(records))
    return dst


@pytest.fixture(scope="session")
def subset_src(painted_kits23, tmp_path_factory) -> Path:
    return copy_cases(painted_kits23, tmp_path_factory.mktemp("subset") / "dataset", SUBSET)


@pytest.fixture(scope="session")
def converted_subset(subset_src, tmp_path_factory):
    """(raw folder, report, config) of converting :data:`SUBSET` on a grid of 32."""
    config = ConversionConfig(grid=TEST_GRID)
    raw = tmp_path_factory.mktemp("raw")
    return raw, convert_kits(subset_src, raw, config), config
