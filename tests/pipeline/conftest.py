"""A tiny demo run shared by the pipeline tests: real synthetic data, conversion, nnU-Net planning,
training of the kidney, mass and classifier models (100 iterations per U-Net), prediction and
evaluation. Its ``models`` folder is what the end-to-end tests predict with."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

import pytest

from renal_nnunet.pipeline.demo import DemoConfig, DemoSummary, run_demo

TINY_DEMO = DemoConfig(cases=5, test_cases=1, grid=32, minutes=2.0, shape_zyx=(26, 27, 36),
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
