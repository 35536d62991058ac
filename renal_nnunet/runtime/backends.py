"""Which runtime runs the forward passes (PyTorch, or OpenVINO on the CPU), and the network clock.

Only the forward pass changes with the runtime: nnU-Net's preprocessing, the grid, the crops, the
fold averaging of logits and everything after stay the same. The OpenVINO side (conversion, cache,
compilation) is :mod:`renal_nnunet.runtime.openvino`; this module stays light (no torch) so that
the CLI can offer the choices.

:data:`NETWORK_CLOCK` adds up the wall seconds spent inside forward passes of either runtime (what
``scripts/bench_predict.py`` reports as ``network_s``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterator, Literal

__all__ = ["BACKENDS", "Runtime", "NETWORK_CLOCK", "NetworkClock"]

BACKENDS: tuple[str, ...] = ("auto", "torch", "openvino")
"""Values of ``--backend``: ``auto`` is OpenVINO on the CPU and PyTorch on any other device."""


@dataclass(frozen=True)
class Runtime:
    """What runs a network's forward passes: a resolved backend on a torch device.

    Attributes:
        backend: ``torch`` or ``openvino`` (never ``auto``: see :meth:`resolve`).
        device: the torch device (``cpu``, ``cuda``, ``mps``); OpenVINO runs on ``cpu`` only.
    """

    backend: Literal["torch", "openvino"] = "torch"
    device: str = "cpu"

    @classmethod
    def resolve(cls, backend: str = "auto", device: str = "cpu") -> "Runtime":
        """The runtime of a ``--backend`` choice on ``device`` (``auto``: OpenVINO on ``cpu``,
        PyTorch elsewhere): the one place a backend choice is resolved.

        Raises:
            ValueError: an unknown backend, or OpenVINO asked for on a device other than the CPU.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if backend == "auto":
            return cls("openvino" if device == "cpu" else "torch", device)
        if backend == "openvino" and device != "cpu":
            raise ValueError(f"the openvino backend runs on the CPU, not on {device!r}: use --device cpu or --backend torch")
        return cls(backend, device)


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
