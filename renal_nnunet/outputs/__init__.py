"""What a prediction writes, one module per file format, and the result type they all read.

* :mod:`~renal_nnunet.outputs.records` — :class:`LesionRecord`, one predicted mass (the main
  result type), and the classes of masses left unclassified (``too_small``, ``cut_off``);
* :mod:`~renal_nnunet.outputs.lesion_table` — ``<case>_lesions.csv`` / ``.json``;
* :mod:`~renal_nnunet.outputs.report` — the ``<case>_report.png`` figure;
* :mod:`~renal_nnunet.outputs.dicom` — DICOM SEG and TID 1500 SR for DICOM inputs;
* :mod:`~renal_nnunet.outputs.viewer_labels` — label names and colours for ITK-SNAP and 3D Slicer.

Writers take results and paths and write atomically; they run no model. Deciding what to write is
:mod:`renal_nnunet.pipeline.predict`'s job. Public names are imported lazily, so importing this
package does not pull in matplotlib or pydicom.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "LesionRecord": "records",
    "TOO_SMALL_CLASS": "records",
    "CUT_OFF_CLASS": "records",
    "LESION_TABLE_COLUMNS": "lesion_table",
    "write_lesion_tables": "lesion_table",
    "save_case_report": "report",
    "write_dicom_outputs": "dicom",
    "read_dicom_seg_labels": "dicom",
    "write_viewer_label_files": "viewer_labels",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
