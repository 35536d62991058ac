"""Inference backends: where the networks' forward passes run (PyTorch, or OpenVINO on the CPU).

Only the forward pass changes with the backend: nnU-Net's preprocessing, the grid, the crops, the
fold averaging of logits and everything after stay the same. The OpenVINO side (conversion, cache,
compilation) is :mod:`renal_nnunet.inference.openvino_backend`; this module stays light (no torch)
so that the CLI can offer the choices.

:data:`NETWORK_CLOCK` adds up the wall seconds spent inside forward passes of either backend (what
``scripts/bench_predict.py`` reports as ``network_s``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

__all__ = ["BACKENDS", "resolve_backend", "NETWORK_CLOCK", "NetworkClock"]

BACKENDS: tuple[str, ...] = ("auto", "torch", "openvino")
"""Values of ``--backend``: ``auto`` is OpenVINO on the CPU and PyTorch on any other device."""


def resolve_backend(backend: str, device: str) -> str:
    """The backend that runs on ``device``: ``torch`` or ``openvino`` (``auto``: OpenVINO on ``cpu``).

    Raises:
        ValueError: an unknown backend, or OpenVINO asked for on a device other than the CPU.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "openvino" if device == "cpu" else "torch"
    if backend == "openvino" and device != "cpu":
        raise ValueError(f"the openvino backend runs on the CPU, not on {device!r}: use --device cpu or --backend torch")
    return backend


class NetworkClock:
    """Wall seconds spent inside network forward passes, added up over a process."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        """Add the block's wall time to :attr:`seconds`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started


NETWORK_CLOCK = NetworkClock()


