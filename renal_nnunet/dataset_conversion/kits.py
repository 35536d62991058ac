"""Reading KiTS21 (``data/``) and KiTS23 (``dataset/``) folders into :class:`SourceCase` lists."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from renal_nnunet.dataset_conversion.sources import SourceCase
from renal_nnunet.io import InputError

__all__ = ["find_kits_cases", "normalise_subtype", "KITS21_SUBTYPE_SPELLINGS"]

log = logging.getLogger(__name__)

KITS21_SUBTYPE_SPELLINGS: dict[str, str] = {
    "papillary": "papillary_rcc",
    "chromophobe": "chromophobe_rcc",
    "urothelial": "transitional_cell_carcinoma",
    "wilms": "wilms_tumor",
    "clear_cell_papillary_rcc": "clear_cell_papillary",
}
"""KiTS21 subtype spellings that KiTS23 writes differently (others are spelled alike)."""

_LAYOUTS = (  # (metadata file, label file name) per layout
    ("kits23.json", "segmentation.nii.gz"),
    ("kits.json", "aggregated_MAJ_seg.nii.gz"),
)
IMAGE_NAME = "imaging.nii.gz"


def normalise_subtype(subtype: str | None) -> str | None:
    """KiTS23 spelling of a KiTS21 or KiTS23 subtype; None for missing, ``null`` or empty."""
    if subtype is None or str(subtype).strip().lower() in ("", "null", "none", "nan"):
        return None
    subtype = str(subtype).strip().lower()
    return KITS21_SUBTYPE_SPELLINGS.get(subtype, subtype)


def find_kits_cases(src: str | Path) -> list[SourceCase]:
    """List the cases of a KiTS21 or KiTS23 folder.

    Args:
        src: the folder holding ``case_XXXXX/`` folders and ``kits23.json`` (KiTS23 ``dataset/``) or
            ``kits.json`` (KiTS21 ``data/``); its parent is accepted too.

    Returns:
        One case per ``case_*`` folder, sorted; a case without a metadata entry carries that as
        its ``problem`` (it fails alone, the others still convert).

    Raises:
        InputError: a missing folder, no metadata file, unreadable metadata, a case id listed
            twice in it, or no case folders.
    """
    src = Path(src)
    if not src.is_dir():
        raise InputError(src, "does not exist or is not a folder")
    for child in ("dataset", "data"):
        if not any(src.glob("case_*")) and (src / child).is_dir():
            src = src / child
    layout = next(((meta, label) for meta, label in _LAYOUTS if (src / meta).is_file()), None)
    if layout is None:
        raise InputError(src, "no KiTS metadata file (kits23.json for KiTS23 dataset/, kits.json for KiTS21 data/)")
    metadata_path = src / layout[0]
    try:
        entries = json.loads(metadata_path.read_text())
        case_ids = [entry["case_id"] for entry in entries]
    except (ValueError, TypeError, KeyError) as err:
        raise InputError(metadata_path, f"not a list of case entries with 'case_id': {err}") from None
    duplicates = sorted({case_id for case_id in case_ids if case_ids.count(case_id) > 1})
    if duplicates:
        raise InputError(metadata_path, f"lists case_id {', '.join(map(str, duplicates))} more than once; which entry "
                                        "(tumour subtype) holds is unknown, so nothing is converted: keep one entry per case")
    metadata = dict(zip(case_ids, entries))
    case_dirs = sorted(p for p in src.glob("case_*") if p.is_dir())
    if not case_dirs:
        raise InputError(src, "holds no case_* folders")
    cases = []
    for case_dir in case_dirs:
        entry = metadata.get(case_dir.name)
        cases.append(SourceCase(
            case_id=case_dir.name,
            patient_id=case_dir.name,  # KiTS has one series per patient
            image_path=case_dir / IMAGE_NAME,
            label_path=case_dir / layout[1],
            subtype=normalise_subtype(entry.get("tumor_histologic_subtype")) if entry else None,
            kidneys_in_view=bool(entry.get("kidneys_in_view", True)) if entry else True,
            problem=None if entry else f"no metadata entry for {case_dir.name}",
            problem_path=None if entry else metadata_path,
        ))
    log.info("found %d KiTS cases in %s (%s)", len(cases), src, layout[0])
    return cases
