"""Which runtime runs the forward passes (PyTorch, or OpenVINO on the CPU) at which precision, and the network clock.

Only the forward pass changes with the runtime: nnU-Net's preprocessing, the grid, the crops, the
fold averaging of logits and everything after stay the same. The OpenVINO side (conversion, cache,
compilation, INT8 quantisation) is :mod:`renal_nnunet.runtime.openvino`; this module stays light
(no torch) so that the CLI can offer the choices.

Precision is chosen in two steps, both here: :meth:`Runtime.resolve` checks a ``--backend`` /
``--precision`` choice once per run, and :meth:`Runtime.for_stage` turns it into one stage's
precision and the reason for it, from the stage's measured agreement with fp32
(:mod:`renal_nnunet.runtime.agreement`). A quantised network is never run without that measurement.

:data:`NETWORK_CLOCK` adds up the wall seconds spent inside forward passes of either runtime (what
``scripts/bench_predict.py`` reports as ``network_s``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterator, Literal

if TYPE_CHECKING:
    from renal_nnunet.runtime.agreement import StageAgreement

__all__ = ["BACKENDS", "PRECISIONS", "Runtime", "NETWORK_CLOCK", "NetworkClock"]

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "openvino")
"""Values of ``--backend``: ``auto`` is OpenVINO on the CPU and PyTorch on any other device."""

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")
"""Values of ``--precision`` (OpenVINO only; PyTorch runs fp32): ``auto`` picks per stage INT8 where
its recorded agreement with fp32 meets the bounds, else bf16 where the CPU has native bf16 and its
agreement meets them, else fp32."""


@dataclass(frozen=True)
class Runtime:
    """What runs a network's forward passes: a resolved backend on a torch device, at a precision.

    Attributes:
        backend: ``torch`` or ``openvino`` (never ``auto``: see :meth:`resolve`).
        device: the torch device (``cpu``, ``cuda``, ``mps``); OpenVINO runs on ``cpu`` only.
        precision: ``fp32``, ``bf16`` or ``int8`` (OpenVINO), or ``auto`` until :meth:`for_stage`
            picks one stage's; PyTorch is always ``fp32``.
        reason: why a stage runs at this precision (set by :meth:`for_stage`; not compared).
    """

    backend: Literal["torch", "openvino"] = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    reason: str = field(default="", compare=False)

    @classmethod
    def resolve(cls, backend: str = "auto", device: str = "cpu", precision: str = "auto") -> "Runtime":
        """The runtime of a ``--backend`` / ``--precision`` choice on ``device`` (``auto`` backend:
        OpenVINO on ``cpu``, PyTorch elsewhere): the one place these choices are resolved. PyTorch
        takes ``auto`` or ``fp32`` and runs fp32; OpenVINO keeps ``auto`` for :meth:`for_stage`.

        Raises:
            ValueError: an unknown backend or precision, OpenVINO asked for on a device other than
                the CPU, or a reduced precision asked of PyTorch.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if backend == "auto":
            backend = "openvino" if device == "cpu" else "torch"
        if backend == "openvino" and device != "cpu":
            raise ValueError(f"the openvino backend runs on the CPU, not on {device!r}: use --device cpu or --backend torch")
        if backend == "torch":
            if precision not in ("auto", "fp32"):
                raise ValueError(f"--precision {precision} needs the openvino backend (torch runs fp32): "
                                 "use --backend openvino or --precision fp32")
            return cls("torch", device, "fp32", "torch runs fp32")
        return cls(backend, device, precision)

    def for_stage(self, agreement: "StageAgreement | None", native: frozenset[str] | None = None) -> "Runtime":
        """This runtime with one stage's precision and the reason for it.

        Args:
            agreement: the stage's measured agreement with fp32 for its current checkpoints
                (:func:`renal_nnunet.runtime.agreement.read_stage_agreement`), None when none is.
            native: precisions the CPU runs natively (default
                :func:`renal_nnunet.runtime.cpu.native_precisions`).

        Returns:
            ``auto``: INT8 when its agreement meets the bounds, else bf16 when the CPU has native
            bf16 and its agreement meets them, else fp32. An explicit precision is kept.

        Raises:
            ValueError: INT8 asked for without a measured INT8 model, or bf16 on a CPU without it.
        """
        if self.backend == "torch":
            return self
        if native is None:
            from renal_nnunet.runtime.cpu import native_precisions

            native = native_precisions()
        checks = {p: agreement.checks.get(p) if agreement else None for p in ("int8", "bf16")}
        if self.precision == "auto":
            return self._auto(checks, native)
        if self.precision == "int8" and checks["int8"] is None:
            raise ValueError("no INT8 model measured against fp32 for these checkpoints: run `renal-nnunet "
                             "compile-models -m MODELS --precision int8 --calibration NNUNET_RAW` first")
        if self.precision == "bf16" and "bf16" not in native:
            raise ValueError("this CPU has no native bf16 (OpenVINO would emulate it slower than fp32): "
                             "use --precision fp32 or auto")
        check = checks.get(self.precision)
        reason = f"asked for (--precision {self.precision})"
        if check is not None and not check.passed:
            log.warning("%s runs although its check against fp32 failed: %s", self.precision,
                        "; ".join(check.failures))
            reason += f"; its check against fp32 failed: {'; '.join(check.failures)}"
        return replace(self, reason=reason)

    def _auto(self, checks: dict, native: frozenset[str]) -> "Runtime":
        int8, bf16 = checks["int8"], checks["bf16"]
        if int8 is not None and int8.passed and "int8" in native:
            return replace(self, precision="int8", reason=f"auto: INT8 agreement with fp32 meets the bounds "
                                                          f"({int8.cases} held-out case(s))")
        why = ["no INT8 agreement measured" if int8 is None
               else f"INT8 check against fp32 failed ({'; '.join(int8.failures)})"]
        if "bf16" not in native:
            why.append("no native bf16 on this CPU")
        elif bf16 is None:
            why.append("bf16 agreement not measured")
        elif not bf16.passed:
            why.append(f"bf16 check against fp32 failed ({'; '.join(bf16.failures)})")
        else:
            return replace(self, precision="bf16", reason=f"auto: {why[0]}; native bf16, agreement with fp32 meets "
                                                          f"the bounds ({bf16.cases} held-out case(s))")
        return replace(self, precision="fp32", reason="auto: " + "; ".join(why))


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
