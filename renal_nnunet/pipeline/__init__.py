"""End-to-end use: ``predict`` (CT -> labelled kidneys, classified masses, lesion table, report),
the models folder (``models``), the demo (``demo``), the baseline comparison (``compare``) and
the training helpers they share (``training``). ``renal_nnunet.predict`` is the public entry point.

This package orchestrates; the files ``predict`` writes (lesion tables, report, DICOM SEG/SR, viewer
label files) and their result type ``LesionRecord`` are :mod:`renal_nnunet.outputs`, below it.
"""
