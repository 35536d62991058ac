"""Lazy public names for the package's ``__init__`` modules.

Importing a stage package (or running ``renal-nnunet --help``) must not pull in torch or nnU-Net;
each public name is imported from its submodule on first use instead.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """Return a module ``__getattr__`` and ``__all__`` for ``{public name: submodule}``.

    Args:
        package: the package's ``__name__``.
        exports: public name -> submodule path relative to ``package`` (e.g. ``"pipeline.predict"``).
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)
