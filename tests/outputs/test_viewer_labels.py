"""Label files for ITK-SNAP and 3D Slicer: every output label, with the report's names and colours."""

from __future__ import annotations

import shlex

from renal_nnunet.anatomy.labels import OUTPUT_LABEL_NAMES, OUTPUT_LABELS
from renal_nnunet.outputs.report import LABEL_COLOURS
from renal_nnunet.outputs.viewer_labels import write_viewer_label_files


def _report_labels() -> dict[int, tuple[str, tuple[int, int, int]]]:
    """value -> (name, RGB 0-255) as the report draws them."""
    return {OUTPUT_LABELS[key]: (name, tuple(round(c * 255) for c in LABEL_COLOURS[key]))
            for key, name in OUTPUT_LABEL_NAMES.items()}


def test_itksnap_and_slicer_files_name_and_colour_every_label_like_the_report(tmp_path):
    files = write_viewer_label_files(tmp_path, "case7")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case7_seg.ctbl", "case7_seg_itksnap.txt"]
    # ITK-SNAP: IDX R G B A VIS MSH "LABEL" (a quoted label with spaces).
    itksnap = {}
    for line in files["labels_itksnap"].read_text().splitlines():
        if line.startswith("#"):
            continue
        idx, r, g, b, alpha, vis, msh, name = shlex.split(line)
        itksnap[int(idx)] = (name, (int(r), int(g), int(b)))
        assert (float(alpha), int(vis)) == ((0.0, 0) if idx == "0" else (1.0, 1))
    # Slicer: value name R G B A.
    slicer = {}
    for line in files["labels_slicer"].read_text().splitlines():
        if line.startswith("#"):
            continue
        value, name, r, g, b, alpha = line.split()
        slicer[int(value)] = (name, (int(r), int(g), int(b)))
    expected = _report_labels()
    assert set(expected) == set(OUTPUT_LABELS.values()) - {0}
    assert {k: v for k, v in itksnap.items() if k} == expected
    assert {k: (n.replace("_", " "), rgb) for k, (n, rgb) in slicer.items() if k} == expected
    assert len({rgb for _, rgb in expected.values()}) == len(expected)  # every label distinguishable
