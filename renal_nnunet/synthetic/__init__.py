"""Synthetic abdominal CT for the demo and the tests.

* :func:`make_randomised_phantom`: domain-randomised torsos (tissue label map first, then a random
  contrast phase, per-tissue HU, texture, blur, noise; varied anatomy, fields of view including
  scans without kidneys, and voxel sizes), whose models are meant to transfer to real CT; the demo's
  default (:mod:`renal_nnunet.synthetic.randomised`).
* :func:`make_phantom`: whole phantoms from scratch (body, fat, muscle, spine, liver on the
  patient's right, spleen on the left, two kidneys with cortex/medulla/sinus fat, 0-4 masses per
  kidney: AML with macroscopic fat, homogeneous cysts, heterogeneous solid tumours).
* :func:`load_kits_shapes`: real kidney, tumour and cyst shapes of a KiTS23 dataset, which
  :func:`make_randomised_phantom` places into its torsos (``kits_shapes=``).
* :func:`paint_ct`: CT intensities painted around and onto a real KiTS label map.
* :func:`write_synthetic_kits`, :func:`write_painted_kits`: cohorts in the KiTS23/KiTS21 layouts.
* :func:`make_lesion_patch`: one mass in renal parenchyma, for classifier tests.

All placement happens in patient coordinates (ITK LPS: +x patient left, +y posterior,
+z superior, mm) and is then rasterised, so any grid orientation keeps the anatomy right.
Everything is seeded and deterministic.
"""

from renal_nnunet.synthetic.layouts import (
    KITS21_SPELLING,
    LAYOUT_FILES,
    SYNTHETIC_SUBTYPE_CYCLE,
    kits_subtype_spelling,
    subsample_inplane,
    write_painted_kits,
    write_synthetic_kits,
)
from renal_nnunet.synthetic.kits_shapes import KitsShapes, load_kits_shapes
from renal_nnunet.synthetic.paint import paint_ct
from renal_nnunet.synthetic.phantom import Phantom, SyntheticLesion, make_lesion_patch, make_phantom
from renal_nnunet.synthetic.randomised import FIELDS_OF_VIEW, PHASES, make_randomised_phantom
from renal_nnunet.synthetic.textures import LESION_KINDS, tumour_kind_for_subtype

__all__ = [
    "FIELDS_OF_VIEW",
    "PHASES",
    "KITS21_SPELLING",
    "KitsShapes",
    "LAYOUT_FILES",
    "LESION_KINDS",
    "SYNTHETIC_SUBTYPE_CYCLE",
    "Phantom",
    "SyntheticLesion",
    "kits_subtype_spelling",
    "load_kits_shapes",
    "make_lesion_patch",
    "make_phantom",
    "make_randomised_phantom",
    "paint_ct",
    "subsample_inplane",
    "tumour_kind_for_subtype",
    "write_painted_kits",
    "write_synthetic_kits",
]
