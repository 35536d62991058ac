"""The ``renal-nnunet`` command line: one subcommand per pipeline step.

Each stage's subcommands live in that stage's ``cli`` module, which exposes ``register(subparsers)``
and keeps heavy imports (torch, nnU-Net) inside its handlers so ``--help`` stays fast. Handlers
take the parsed arguments, call one library function, print, and return an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from renal_nnunet.io import InputError

_STAGE_CLI_MODULES = (
    "renal_nnunet.dataset_conversion.cli",
    "renal_nnunet.nnunet.cli",
    "renal_nnunet.inference.cli",
    "renal_nnunet.classification.cli",
    "renal_nnunet.nephrometry.cli",
    "renal_nnunet.evaluation.cli",
    "renal_nnunet.pipeline.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="renal-nnunet",
        description="Cascade 3D U-Net + ResNet-10 renal-mass analysis on CT, as an nnU-Net v2 plugin.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _STAGE_CLI_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (InputError, ValueError, OSError) as err:  # the user's input or files: a message, no traceback
        if args.verbose:
            logging.getLogger(__name__).exception("traceback (shown with -v)")
        print(f"renal-nnunet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
