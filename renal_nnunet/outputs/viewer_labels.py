"""Label names and colours for viewers, written next to each ``<case>_seg.nii.gz``.

- ITK-SNAP: ``<case>_seg_itksnap.txt``, a label description file (Segmentation > Import Label
  Descriptions).
- 3D Slicer: ``<case>_seg.ctbl``, a colour table (load it with Add Data, then pick it as the
  label map's lookup table, or load the seg "as segmentation" with this colour node).

Both hold the names and colours of :data:`renal_nnunet.anatomy.labels.OUTPUT_LABEL_NAMES` /
``OUTPUT_LABEL_COLOURS``, the ones the report draws with.
"""

from __future__ import annotations

from pathlib import Path

from renal_nnunet.anatomy.labels import OUTPUT_LABEL_COLOURS, OUTPUT_LABEL_NAMES, OUTPUT_LABELS
from renal_nnunet.io import atomic_path

__all__ = ["ITKSNAP_SUFFIX", "SLICER_SUFFIX", "itksnap_label_text", "slicer_colour_table_text",
           "write_viewer_label_files"]

ITKSNAP_SUFFIX = "_seg_itksnap.txt"
SLICER_SUFFIX = "_seg.ctbl"


def _labels() -> list[tuple[int, str, tuple[int, int, int]]]:
    """(value, display name, RGB) of every non-background output label, by value."""
    return sorted((OUTPUT_LABELS[key], name, OUTPUT_LABEL_COLOURS[key]) for key, name in OUTPUT_LABEL_NAMES.items())


def itksnap_label_text() -> str:
    """ITK-SNAP label description file (columns IDX R G B A VIS MSH "LABEL"; A is opacity 0-1).

    >>> itksnap_label_text().splitlines()[3]
    '    1     0  255    0        1  1  1    "right kidney"'
    """
    lines = ["# ITK-SnAP Label Description File (renal_nnunet output labels)",
             "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
             '    0     0    0    0        0  0  0    "Clear Label"']
    lines += [f'{value:5d} {r:5d} {g:4d} {b:4d}        1  1  1    "{name}"' for value, name, (r, g, b) in _labels()]
    return "\n".join(lines) + "\n"


def slicer_colour_table_text() -> str:
    """3D Slicer colour table (``value name R G B A``, 0-255; Slicer names hold no spaces).

    >>> slicer_colour_table_text().splitlines()[3]
    '1 right_kidney 0 255 0 255'
    """
    rows = [(0, "background", (0, 0, 0), 0)] + [(value, name, rgb, 255) for value, name, rgb in _labels()]
    lines = ["# Color table file (renal_nnunet output labels)", f"# {len(rows)} values"]
    lines += [f"{value} {name.replace(' ', '_')} {r} {g} {b} {alpha}" for value, name, (r, g, b), alpha in rows]
    return "\n".join(lines) + "\n"


def write_viewer_label_files(output_dir: Path, case_id: str) -> dict[str, Path]:
    """Write the ITK-SNAP and Slicer label files for ``<case_id>_seg.nii.gz`` (atomic).

    Returns:
        ``{"labels_itksnap": path, "labels_slicer": path}``.
    """
    files = {"labels_itksnap": (output_dir / f"{case_id}{ITKSNAP_SUFFIX}", itksnap_label_text()),
             "labels_slicer": (output_dir / f"{case_id}{SLICER_SUFFIX}", slicer_colour_table_text())}
    for path, text in files.values():
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return {kind: path for kind, (path, _) in files.items()}
