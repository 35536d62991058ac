"""Reference lesion classes (AML / cystic / solid / unknown) from labels and pathology."""

from __future__ import annotations

__all__ = ["lesion_class", "CYSTIC_SUBTYPES", "UNKNOWN_CLASS"]

CYSTIC_SUBTYPES = frozenset({"cyst", "multilocular_cystic_rcc"})
UNKNOWN_CLASS = "unknown"


def lesion_class(label_name: str, subtype: str | None) -> tuple[str, str]:
    """Class and its evidence for a lesion whose (majority) label is ``label_name``.

    Rules: a cyst label is cystic (evidence ``label``); a label that names its class (``AML``,
    ``cystic``, ``solid`` from a manifest) is that class (``label``); a tumour takes the patient's
    pathology (``pathology``): ``angiomyolipoma`` -> AML, ``cyst``/``multilocular_cystic_rcc`` ->
    cystic, any other subtype -> solid; without a subtype it is ``unknown`` (evidence ``none``).

    Args:
        label_name: ``tumor``, ``cyst``, ``AML``, ``cystic`` or ``solid``.
        subtype: the patient's histologic subtype in KiTS23 spelling, or None.

    >>> lesion_class("tumor", "angiomyolipoma")
    ('AML', 'pathology')
    >>> lesion_class("cyst", "clear_cell_rcc")
    ('cystic', 'label')
    >>> lesion_class("tumor", None)
    ('unknown', 'none')
    """
    if label_name == "cyst":
        return "cystic", "label"
    if label_name in ("AML", "cystic", "solid"):
        return label_name, "label"
    if label_name != "tumor":
        raise ValueError(f"not a mass label: {label_name!r}")
    if subtype is None:
        return UNKNOWN_CLASS, "none"
    if subtype == "angiomyolipoma":
        return "AML", "pathology"
    if subtype in CYSTIC_SUBTYPES:
        return "cystic", "pathology"
    return "solid", "pathology"
