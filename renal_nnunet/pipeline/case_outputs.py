"""A case's output files as one set: staged, then put in place together, with a record written last.

``predict`` writes every file of a case (label map, lesion tables, report, Grad-CAMs, DICOM
objects, viewer label files) into a hidden staging folder beside the outputs. Only when the case
is done are the earlier outputs of that case removed, the new files moved into place, and
``<case>_outputs.json`` (the list of files, the models' SHA-256 and the time) written last. So:

* a case without its record is incomplete (a run killed while writing it), whatever files it has;
* no file of an earlier run is left beside a new result for the same case (stale Grad-CAMs of
  lesions the new result does not have, say);
* a case that fails keeps no outputs of an earlier run either: a result never sits beside a run
  summary that says the case failed;
* ``predict --continue`` skips a case whose record lists only files that exist and names the models
  of this run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from renal_nnunet.io import write_json

__all__ = ["RECORD_SUFFIX", "case_output_set", "remove_case_outputs", "is_complete"]

log = logging.getLogger(__name__)

RECORD_SUFFIX = "_outputs.json"
"""``<case>_outputs.json``: the record of a case's complete output set (written last)."""

_EARLIER_OUTPUT = re.compile(r"_(seg\.nii\.gz|seg\.dcm|sr\.dcm|seg_itksnap\.txt|seg\.ctbl|lesions\.csv|lesions\.json|"
                             r"report\.png|lesion\d+_gradcam\.nii\.gz)$")
"""Names (after ``<case>``) of the outputs that versions without a record wrote."""

_STAGING_PREFIX = ".staging-"


def _record_path(output_dir: Path, case_id: str) -> Path:
    return output_dir / f"{case_id}{RECORD_SUFFIX}"


def remove_case_outputs(output_dir: Path, case_id: str) -> list[str]:
    """Remove every earlier output of a case (its record first, so a case half-removed is
    incomplete); returns the names removed."""
    record_path = _record_path(output_dir, case_id)
    listed = []
    if record_path.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            listed = [str(name) for name in json.loads(record_path.read_text())["files"]]
        record_path.unlink()
    prefix = f"{case_id}_"
    earlier = {path.name for path in output_dir.glob(f"{_glob_escape(prefix)}*")
               if _EARLIER_OUTPUT.fullmatch("_" + path.name[len(prefix):])}
    removed = []
    for name in sorted(earlier | {Path(name).name for name in listed}):
        path = output_dir / name
        if path.is_file():
            path.unlink()
            removed.append(name)
    return removed


def _glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped (case ids may hold ``[``)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


@contextlib.contextmanager
def case_output_set(output_dir: Path, case_id: str, models_sha256: str) -> Iterator[Path]:
    """Yield a staging folder for one case's outputs; when the block succeeds, replace the case's
    earlier outputs by the staged files and write ``<case>_outputs.json`` last. When it fails,
    nothing staged is kept and the case's earlier outputs are removed too (logged).

    Callers write files into the staging folder under their final names.
    """
    _remove_abandoned_staging(output_dir, case_id)
    staging = output_dir / f"{_STAGING_PREFIX}{case_id}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        removed = remove_case_outputs(output_dir, case_id)
        if removed:
            log.warning("%s: removed %d output file(s) of an earlier run (this run failed for the case)",
                        case_id, len(removed))
        raise
    removed = remove_case_outputs(output_dir, case_id)
    if removed:
        log.info("%s: replaced %d output file(s) of an earlier run", case_id, len(removed))
    names = sorted(path.name for path in staging.iterdir())
    for name in names:
        os.replace(staging / name, output_dir / name)
    staging.rmdir()
    write_json({"case_id": case_id, "files": names, "models_sha256": models_sha256,
                "completed_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")},
               _record_path(output_dir, case_id))


def is_complete(output_dir: Path, case_id: str, models_sha256: str) -> bool:
    """Whether a case has a complete output set made with these models (``predict --continue``)."""
    try:
        record = json.loads(_record_path(output_dir, case_id).read_text())
        return (record["models_sha256"] == models_sha256
                and all((output_dir / name).is_file() for name in record["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _remove_abandoned_staging(output_dir: Path, case_id: str) -> None:
    """Remove the staging folders of this case that a killed run left behind (only this case's:
    ``--num-parts`` runs may be writing other cases into the same folder)."""
    own = re.compile(re.escape(f"{_STAGING_PREFIX}{case_id}-") + "[0-9a-f]{8}")
    for folder in output_dir.glob(f"{_glob_escape(_STAGING_PREFIX + case_id)}-*"):
        if folder.is_dir() and own.fullmatch(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s, left by an interrupted run", folder.name)
