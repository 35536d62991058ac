"""KiTS21/KiTS23 or CSV-manifest data -> the paper's nnU-Net v2 raw datasets (conversion only).

One module per step: ``kits``/``manifest`` (what to read), ``sources`` (one source case),
``case`` (one case in memory: sides, sinus, grids, crops, lesions, built from
:mod:`renal_nnunet.anatomy`), ``nnunet_dataset`` (nnU-Net files), ``convert`` (the batch).
Only the CLI, the demo and the synthetic layouts import this package. Public names are imported
lazily.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "ConversionConfig": "convert", "ConversionReport": "convert", "convert_kits": "convert",
    "convert_cases": "convert", "convert_manifest": "manifest", "find_kits_cases": "kits",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
