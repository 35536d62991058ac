"""What the CPU offers for reduced-precision inference: its model, its relevant instruction-set
flags, and the precisions OpenVINO's CPU plugin runs natively on it.

Every speed or agreement figure of a reduced precision is stated with these flags: INT8 is fast
with AVX-512 VNNI or AMX (and still faster than fp32 with AVX2 alone), bf16 needs AVX-512 BF16 or
AMX (without them OpenVINO emulates it, slower than fp32).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["RELEVANT_FLAGS", "cpu_description", "native_precisions"]

RELEVANT_FLAGS: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
                                   "amx_int8", "amx_bf16")
"""The ``/proc/cpuinfo`` flags that decide INT8 and bf16 speed."""


def cpu_description(cpuinfo: str | None = None) -> dict:
    """``{"model": name, "flags": [...]}``: the CPU's model name and which of :data:`RELEVANT_FLAGS` it has.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (default: read it; elsewhere only the model from
            :func:`platform.processor` and no flags).

    >>> cpu_description("model name\\t: Test CPU\\nflags\\t\\t: fpu avx2 avx512_vnni sse\\n")
    {'model': 'Test CPU', 'flags': ['avx2', 'avx512_vnni']}
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    present = set(fields.get("flags", "").split())
    return {"model": fields.get("model name") or platform.processor() or "unknown",
            "flags": [flag for flag in RELEVANT_FLAGS if flag in present]}


@functools.lru_cache(maxsize=1)
def native_precisions() -> frozenset[str]:
    """Precisions OpenVINO's CPU plugin runs natively here (``fp32``, ``int8``, ``bf16``), from its
    ``OPTIMIZATION_CAPABILITIES``."""
    import openvino as ov

    capabilities = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    names = {"FP32": "fp32", "INT8": "int8", "BF16": "bf16"}
    return frozenset(name for capability, name in names.items() if capability in capabilities)
