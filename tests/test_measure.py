"""The benchmarks' peak memory of a child process is the child's own, not its parent's."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from renal_nnunet.runtime.measure import run_measured

ALLOCATE = "import numpy as np, time; a = np.ones({n}, np.uint8); time.sleep(0.3)"


def test_a_child_s_peak_is_its_own_even_after_a_large_parent(tmp_path):
    """A parent holding 1.5 GB (as ``bench_predict`` after quantising in-process) runs a child that
    touches 0.3 GB: the child's figure is about 0.3 GB plus Python, not the parent's 1.5 GB (what
    ``os.wait4``'s ``ru_maxrss`` reported for every child)."""
    parent = np.ones(int(1.5 * 1024**3), np.uint8)  # touched, so resident
    small = run_measured([sys.executable, "-c", ALLOCATE.format(n=int(0.3 * 1024**3))], tmp_path / "small.log")
    large = run_measured([sys.executable, "-c", ALLOCATE.format(n=int(0.9 * 1024**3))], tmp_path / "large.log")
    assert parent.sum() == parent.size
    assert small.exit_code == 0 and large.exit_code == 0
    assert 0.3 <= small.peak_rss_gb < 0.6
    assert large.peak_rss_gb - small.peak_rss_gb == pytest.approx(0.6, abs=0.1)
    assert small.wall_s >= 0.3


def test_a_failing_child_s_exit_code_and_output_are_kept(tmp_path):
    run = run_measured([sys.executable, "-c", "import sys; print('bad input'); sys.exit(3)"], tmp_path / "child.log")
    assert run.exit_code == 3
    assert "bad input" in (tmp_path / "child.log").read_text()
