"""nnU-Net's environment in one module: its three folders, its worker counts, the variables this
package's trainer lookup sets, and where nnU-Net's console output goes.

nnU-Net (2.8.0 and later; 2.7 read its folders at import) reads its variables when it uses them,
not at import, so setting them in this process (and in the workers it spawns, which inherit them)
is enough:

=========================  ==========================================================
``nnUNet_raw``             raw datasets (``DatasetNNN_Name/imagesTr``, ``labelsTr``)
``nnUNet_preprocessed``    plans and preprocessed data
``nnUNet_results``         trained models
``nnUNet_n_proc_DA``       augmentation worker processes of a training (0: in-process)
``nnUNet_def_n_proc``      default worker processes of planning and preprocessing
``nnUNet_extTrainer``      extra trainer folders (:mod:`renal_nnunet.trainers.registration`)
=========================  ==========================================================
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

__all__ = [
    "FOLDER_VARIABLES",
    "NnunetFolders",
    "required_folder",
    "dataset_folder",
    "environment_variables",
    "nnunet_environment",
    "training_environment",
    "training_augmentation_processes",
    "nnunet_output_to",
]

FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
_AUGMENTATION_PROCESSES = "nnUNet_n_proc_DA"
_DEFAULT_PROCESSES = "nnUNet_def_n_proc"


@dataclass(frozen=True)
class NnunetFolders:
    """nnU-Net's three folders (raw, preprocessed, results)."""

    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def under(cls, root: str | os.PathLike) -> "NnunetFolders":
        """``root/nnUNet_raw``, ``root/nnUNet_preprocessed``, ``root/nnUNet_results``."""
        root = Path(root)
        return cls(*(root / name for name in FOLDER_VARIABLES))

    @classmethod
    def from_environment(cls) -> "NnunetFolders":
        """The folders the environment names now.

        Raises:
            ValueError: one of the three variables is not set.
        """
        return cls(*(required_folder(name) for name in FOLDER_VARIABLES))


def required_folder(name: str) -> Path:
    """The folder an nnU-Net variable (``nnUNet_raw`` / ``_preprocessed`` / ``_results``) names.

    Raises:
        ValueError: the variable is not set, with a hint on how to set it.
    """
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"environment variable {name} is not set; point it at nnU-Net's {name} folder "
                         "(see nnU-Net's documentation/setting_up_paths.md)")
    return Path(value)


def dataset_folder(dataset: int | str, kind: str = "nnUNet_raw") -> Path:
    """``$<kind>/DatasetNNN_Name`` for a dataset id or name (kind: nnUNet_raw / _preprocessed / _results).

    Raises:
        ValueError: ``kind`` is not set, or no dataset with that id or name exists.
    """
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    folder = required_folder(kind)
    try:
        name = maybe_convert_to_dataset_name(dataset if str(dataset).startswith("Dataset") else int(dataset))
    except RuntimeError as err:
        raise ValueError(str(err)) from None
    return folder / name


@contextlib.contextmanager
def environment_variables(values: Mapping[str, str | None]) -> Iterator[None]:
    """Within the block, set each variable (``None``: unset it); the previous values are restored after."""
    previous = {name: os.environ.get(name) for name in values}
    try:
        _set_variables(values)
        yield
    finally:
        _set_variables(previous)


def _set_variables(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def nnunet_environment(folders: NnunetFolders, augmentation_processes: int | None = None) -> Iterator[NnunetFolders]:
    """Point nnU-Net at ``folders`` (created if missing) and set its worker counts within the block.

    ``augmentation_processes``: augmentation workers of a training (``nnUNet_n_proc_DA``); ``None``
    leaves the variable as the user set it (or unset, for nnU-Net's own default). ``0`` makes
    nnU-Net augment in the training process (on a small CPU machine worker processes only add
    start-up time); planning needs at least 1, which :func:`renal_nnunet.nnunet.commands.plan`
    sees to. Planning and preprocessing get one worker.
    """
    for folder in (folders.raw, folders.preprocessed, folders.results):
        Path(folder).mkdir(parents=True, exist_ok=True)
    values = dict(zip(FOLDER_VARIABLES, (str(folders.raw), str(folders.preprocessed), str(folders.results))))
    values[_DEFAULT_PROCESSES] = "1"
    if augmentation_processes is not None:
        values[_AUGMENTATION_PROCESSES] = str(augmentation_processes)
    with environment_variables(values):
        yield folders


def training_augmentation_processes(device: str) -> int | None:
    """Augmentation workers of a training on ``device``: ``$nnUNet_n_proc_DA`` when the user set it;
    otherwise 0 on the CPU (augmentation in the training process: no worker start-up cost, and a
    seeded trainer repeats exactly) and ``None`` elsewhere, which leaves the choice to nnU-Net's
    ``get_allowed_n_proc_DA`` (its per-machine default; one worker would starve a GPU).

    Raises:
        ValueError: ``nnUNet_n_proc_DA`` is set but is not a whole number >= 0.
    """
    value = os.environ.get(_AUGMENTATION_PROCESSES)
    if value is not None:
        if not value.strip().isdigit():
            raise ValueError(f"{_AUGMENTATION_PROCESSES}={value!r}: give a whole number of worker processes >= 0")
        return int(value)
    return 0 if device == "cpu" else None


@contextlib.contextmanager
def training_environment(device: str) -> Iterator[NnunetFolders]:
    """The environment's folders with the worker counts of a training on ``device`` (see
    :func:`training_augmentation_processes`), within the block.

    Raises:
        ValueError: one of nnU-Net's folder variables is not set, or ``nnUNet_n_proc_DA`` is invalid.
    """
    with nnunet_environment(NnunetFolders.from_environment(), training_augmentation_processes(device)) as folders:
        yield folders


class _ConsoleRecords(logging.Filter):
    """Passes the records of ``loggers`` (and their children) and every warning-or-worse record."""

    def __init__(self, loggers: tuple[str, ...]):
        super().__init__()
        self.loggers = loggers

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or any(
            record.name == name or record.name.startswith(name + ".") for name in self.loggers)


@contextlib.contextmanager
def nnunet_output_to(log_path: str | os.PathLike, console_loggers: tuple[str, ...] = ("renal_nnunet",)
                     ) -> Iterator[Path]:
    """Within the block, nnU-Net's console output is appended to ``log_path`` instead.

    What goes to the file: everything printed to ``sys.stdout`` / ``sys.stderr`` in this process
    (nnU-Net's prints of its planner, trainer and trainer search, progress bars, Python warnings),
    and every log record. The console's log handlers keep only the records of ``console_loggers``
    and those of level WARNING or worse (nnU-Net logs through the root logger).

    Returns:
        The log file's path.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    console_filter = _ConsoleRecords(console_loggers)
    with open(log_path, "a", encoding="utf-8", buffering=1) as log_file:
        file_handler = logging.StreamHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console_handlers = list(root.handlers)
        for handler in console_handlers:
            handler.addFilter(console_filter)
        root.addHandler(file_handler)
        try:
            with (contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file),
                  warnings.catch_warnings()):
                # also when a caller (e.g. pytest) records warnings instead of printing them
                warnings.showwarning = functools.partial(_write_warning, log_file)
                yield log_path
        finally:
            root.removeHandler(file_handler)
            for handler in console_handlers:
                handler.removeFilter(console_filter)


def _write_warning(log_file, message, category, filename, lineno, file=None, line=None) -> None:
    log_file.write(warnings.formatwarning(message, category, filename, lineno, line))
