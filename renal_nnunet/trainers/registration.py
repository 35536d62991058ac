"""Make nnU-Net's trainer lookup (``-tr NAME``) find this package's trainers.

nnU-Net (2.8.0 and later) resolves a trainer name (for ``nnUNetv2_train -tr`` and, from the
checkpoint, for prediction) by scanning ``nnunetv2/training/nnUNetTrainer`` and then each folder
listed in the environment variable ``nnUNet_extTrainer`` (``os.pathsep``-separated; modules there
are imported as top-level modules; earlier releases have no such variable).
:data:`EXT_TRAINER_DIR` is such a folder: it holds one uniquely named module re-exporting
:mod:`renal_nnunet.trainers.paper`.

Two ways to use it:

* stock commands: ``eval "$(renal-nnunet env)"`` (prints :func:`ext_trainer_export_line`), then
  ``nnUNetv2_train D 3d_fullres 0 -tr nnUNetTrainerRenalPaper`` and ``nnUNetv2_predict``;
* in-process (the ``renal-nnunet train`` / ``predict-dataset`` wrappers and
  :mod:`renal_nnunet.nnunet.layout`): :func:`trainer_lookup` adds the folder to the
  variable for the duration of a call, so no user setup is needed. nnU-Net reads the variable at
  lookup time, and worker processes it spawns inherit it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
from typing import Iterator

from renal_nnunet.nnunet.environment import environment_variables

__all__ = ["EXT_TRAINER_DIR", "ext_trainer_search_path", "ext_trainer_export_line", "trainer_lookup"]

EXT_TRAINER_DIR = Path(__file__).resolve().parent / "nnunet_ext"
_VARIABLE = "nnUNet_extTrainer"


def ext_trainer_search_path(current: str | None = None) -> str:
    """``current`` (an ``nnUNet_extTrainer`` value, e.g. a user's own trainer folder) with this
    package's folder appended once; the user's folders keep precedence."""
    folders = [f for f in (current or "").split(os.pathsep) if f]
    if str(EXT_TRAINER_DIR) not in folders:
        folders.append(str(EXT_TRAINER_DIR))
    return os.pathsep.join(folders)


def ext_trainer_export_line(current: str | None = None) -> str:
    """A shell line that makes stock nnU-Net commands find this package's trainers."""
    return f"export {_VARIABLE}={shlex.quote(ext_trainer_search_path(current))}"


@contextlib.contextmanager
def trainer_lookup() -> Iterator[str]:
    """Within the block, ``nnUNet_extTrainer`` also names this package's folder; restored after."""
    search_path = ext_trainer_search_path(os.environ.get(_VARIABLE))
    with environment_variables({_VARIABLE: search_path}):
        yield search_path
