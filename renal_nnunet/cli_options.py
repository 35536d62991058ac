"""The flags every ``renal-nnunet`` subcommand spells the same way, and the one default-device rule.

``-i/--input`` is what a command reads, ``-o/--output`` what it writes, ``-m/--models`` the
trained model(s) it runs, ``-f/--folds`` the nnU-Net folds it ensembles, ``-d/--dataset`` an
nnU-Net dataset (as in nnU-Net, and nothing else), and ``--device`` (also nnU-Net's ``-device``)
the torch device, which defaults to :func:`default_device`, and ``--backend`` what runs the networks'
forward passes. Importing this module stays light
(no torch) so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from renal_nnunet.settings import PAPER

__all__ = ["DEVICES", "PAPER_FOLDS", "default_device", "resolve_device", "add_input", "add_output", "add_models", "add_folds",
           "add_dataset", "add_device", "add_backend", "add_precision", "nnunet_folds", "shipped_folds", "probability",
           "non_negative_mm", "positive_int", "runtime_of", "print_batch_report"]

DEVICES: tuple[str, ...] = ("cuda", "cpu", "mps")
"""Devices a ``--device`` flag accepts (nnU-Net's choices)."""

PAPER_FOLDS: list[str] = [str(f) for f in PAPER.folds]
"""Default of ``-f/--folds`` where the folds are not read from a models folder."""


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``: the default of every ``--device``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> str:
    """The ``--device`` value, or :func:`default_device` when it was not given."""
    return device or default_device()


def add_input(parser: argparse.ArgumentParser, help: str, **kwargs) -> None:
    """``-i/--input``: what the command reads (``args.input``)."""
    parser.add_argument("-i", "--input", dest="input", required=True, help=help, **kwargs)


def add_output(parser: argparse.ArgumentParser, help: str, **kwargs) -> None:
    """``-o/--output``: what the command writes (``args.output``); required unless a default is given."""
    kwargs.setdefault("required", "default" not in kwargs)
    parser.add_argument("-o", "--output", dest="output", help=help, **kwargs)


def add_models(parser: argparse.ArgumentParser, help: str, **kwargs) -> None:
    """``-m/--models``: the trained model(s) the command runs or packs (``args.models``)."""
    parser.add_argument("-m", "--models", dest="models", required=True, help=help, **kwargs)


def add_folds(parser: argparse.ArgumentParser, all_shipped: bool = False) -> None:
    """``-f/--folds``: folds to ensemble (``args.folds``, strings: integers or ``all``).

    Args:
        all_shipped: default to every fold the models folder ships (None) instead of the paper's 0-4.
    """
    if all_shipped:
        parser.add_argument("-f", "--folds", dest="folds", nargs="+", default=None,
                            help="folds to ensemble (default: all the models folder ships)")
    else:
        parser.add_argument("-f", "--folds", dest="folds", nargs="+", default=PAPER_FOLDS,
                            help=f"folds to ensemble, integers or 'all' (default {' '.join(PAPER_FOLDS)}, the paper's)")


def add_dataset(parser: argparse.ArgumentParser, help: str = "nnU-Net dataset id or name") -> None:
    """``-d/--dataset``: an nnU-Net dataset id or name (``args.dataset``)."""
    parser.add_argument("-d", "--dataset", dest="dataset", required=True, help=help)


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device`` (or nnU-Net's ``-device``): torch device; None until :func:`resolve_device`."""
    parser.add_argument("--device", "-device", dest="device", default=None, choices=DEVICES,
                        help="torch device (default: cuda if available, else cpu)")


def add_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend``: what runs the networks' forward passes (``args.backend``, default ``auto``)."""
    from renal_nnunet.runtime.backends import BACKENDS

    parser.add_argument("--backend", dest="backend", default="auto", choices=BACKENDS,
                        help="forward passes on torch or openvino (default auto: openvino on the CPU, torch on a GPU)")


def probability(text: str) -> float:
    """argparse type: a number in [0, 1] (argparse names the option in its error)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def non_negative_mm(text: str) -> float:
    """argparse type: a length in mm, at least 0 (argparse names the option in its error)."""
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 mm, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_precision(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--precision``: the OpenVINO networks' arithmetic (``args.precision``, default ``auto``)."""
    from renal_nnunet.runtime.backends import PRECISIONS

    parser.add_argument("--precision", dest="precision", default="auto", choices=PRECISIONS,
                        help=help or "OpenVINO arithmetic (torch runs fp32): fp32, bf16, int8, or auto (default): per "
                                     "stage INT8 where compile-models measured it within the bounds, else bf16 where "
                                     "the CPU has it and it was measured within them, else fp32")


def nnunet_folds(folds: Sequence[str]) -> tuple[int | str, ...]:
    """``-f`` values as nnU-Net takes them: integers, and ``all`` for the model trained on every case.

    Raises:
        ValueError: a value that is neither (named as ``-f/--folds``).
    """
    from renal_nnunet.nnunet.layout import parse_folds

    try:
        return parse_folds(folds)
    except ValueError as err:
        raise ValueError(f"-f/--folds: {err}") from None


def shipped_folds(folds: Sequence[str] | None) -> tuple[int | str, ...] | None:
    """``-f`` values of a command that runs a models folder: None (every fold it ships) for none or ``all``."""
    if not folds or list(folds) == ["all"]:
        return None
    return nnunet_folds(folds)


def runtime_of(args: argparse.Namespace):
    """The :class:`~renal_nnunet.runtime.backends.Runtime` of ``--backend``, ``--device`` and ``--precision``."""
    from renal_nnunet.runtime.backends import Runtime

    return Runtime.resolve(args.backend, resolve_device(args.device), getattr(args, "precision", "auto"))


def print_batch_report(written: Sequence[Path], failures: Sequence[str]) -> int:
    """Print each written file and each failure; exit code 1 if any case failed."""
    for path in written:
        print(path)
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    print(f"{len(written)} written, {len(failures)} failed", file=sys.stderr if failures else sys.stdout)
    return 1 if failures else 0
