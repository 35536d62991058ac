"""A tiny demo run shared by the pipeline tests: real synthetic data, conversion, nnU-Net planning,
training of the kidney, mass and classifier models (100 iterations per U-Net), prediction and
evaluation. Its ``models`` folder is what the end-to-end tests predict with."""

from __future__ import annotations

from pathlib import Path

import pytest

from renal_nnunet.pipeline.demo import DemoConfig, DemoSummary, run_demo

TINY_DEMO = DemoConfig(cases=5, test_cases=1, grid=32, minutes=2.0, shape_zyx=(26, 27, 36),
                       spacing_zyx_mm=(10.0, 10.0, 10.0), seed=7)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> tuple[Path, DemoSummary]:
    """``(out_dir, summary)`` of a tiny demo run (its models folder is ``out_dir / "models"``)."""
    out_dir = tmp_path_factory.mktemp("tiny_demo")
    return out_dir, run_demo(out_dir, TINY_DEMO)
