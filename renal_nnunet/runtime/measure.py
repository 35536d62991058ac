"""Wall time and peak resident memory of a child process, as the ``scripts/bench_*.py`` measure them.

The peak is the child's own high-water mark (``VmHWM`` in ``/proc/<pid>/status``), read while it
runs. ``os.wait4``'s ``ru_maxrss`` is not used: Linux carries the parent's
peak into the child across fork and exec, so a benchmark that had quantised its models in-process
(3.6 GB) read 3.6 GB for every child, whatever the child used.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["ChildRun", "run_measured"]

_POLL_S = 0.05


@dataclass(frozen=True)
class ChildRun:
    """One measured child process.

    Attributes:
        wall_s: seconds from start to exit.
        peak_rss_gb: its peak resident memory (GB, 1024^3 bytes); a peak reached in its last
            50 ms is missed; NaN without ``/proc`` (not Linux).
        exit_code: its exit status (negative: killed by that signal).
    """

    wall_s: float
    peak_rss_gb: float
    exit_code: int


def _high_water_kib(pid: int) -> int | None:
    """``VmHWM`` of a running process (KiB); None once it has exited or without ``/proc``."""
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def run_measured(command: Sequence[str], log_path: str | os.PathLike, env: Mapping[str, str] | None = None) -> ChildRun:
    """Run ``command`` (stdout and stderr to ``log_path``) and measure it (see the module docstring)."""
    started = time.perf_counter()
    peak_kib = None
    with open(log_path, "w") as log:
        process = subprocess.Popen(list(command), env=None if env is None else dict(env), stdout=log,
                                   stderr=subprocess.STDOUT)
        while process.poll() is None:
            current = _high_water_kib(process.pid)
            if current is not None:
                peak_kib = max(peak_kib or 0, current)
            time.sleep(_POLL_S)
    wall_s = time.perf_counter() - started
    return ChildRun(wall_s, float("nan") if peak_kib is None else peak_kib / 1024**2, process.returncode)
