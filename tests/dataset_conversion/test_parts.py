"""A cohort converted in 3 parts (as a cluster's array jobs would) and finished with --finalize
equals the one-part conversion: the same files, splits, dataset.json files and lesion table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.cli import main as cli_main
from renal_nnunet.dataset_conversion.convert import RECORDS_DIR
from renal_nnunet.dataset_conversion.parts import PARTS_DIR
from tests.dataset_conversion.conftest import TEST_GRID


def _files(raw) -> set[str]:
    parts = raw / RECORDS_DIR / PARTS_DIR
    return {str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file() and parts not in p.parents}


def _comparable(document):
    """A conversion report with its converted and skipped cases as one list and without the worker
    count: the session's one-part folder may have been converted again by another test (with other
    workers), which skips every unchanged case."""
    if isinstance(document, dict) and {"converted", "skipped"} <= document.keys():
        done = sorted(set(document["converted"]) | set(document["skipped"]))
        config = {k: v for k, v in document.get("config", {}).items() if k != "workers"}  # not in the output
        document = {**document, "converted": done, "skipped": [], "config": config}
    return document


def _same_content(name: str, raw_a, raw_b) -> bool:
    a, b = raw_a / name, raw_b / name
    if a.name.endswith(".nii.gz"):
        image_a, image_b = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
        return (np.array_equal(sitk.GetArrayViewFromImage(image_a), sitk.GetArrayViewFromImage(image_b))
                and image_a.GetOrigin() == image_b.GetOrigin() and image_a.GetDirection() == image_b.GetDirection()
                and image_a.GetSpacing() == image_b.GetSpacing())
    if a.suffix == ".json":  # the conversion report names the raw folder it wrote
        return _comparable(json.loads(a.read_text().replace(str(raw_a), "RAW"))) == _comparable(
            json.loads(b.read_text().replace(str(raw_b), "RAW")))
    return a.read_bytes() == b.read_bytes()


def test_three_parts_then_finalize_equal_one_conversion(subset_src, converted_subset, tmp_path):
    one_part, _, _ = converted_subset
    raw = tmp_path / "raw"
    command = ["convert", "kits", str(subset_src), "--out", str(raw), "--grid", str(TEST_GRID)]
    for part_id in (0, 2):
        assert cli_main([*command, "--num-parts", "3", "--part-id", str(part_id)]) == 0
    assert cli_main([*command, "--finalize"]) != 0  # part 1 is missing
    assert not list(raw.glob("Dataset*/dataset.json")) and not list(raw.glob("Dataset*/splits_final.json"))
    assert cli_main([*command, "--num-parts", "3", "--part-id", "1"]) == 0
    assert cli_main([*command, "--finalize"]) == 0

    assert _files(raw) == _files(one_part)
    assert len(list(raw.glob("Dataset*/splits_final.json"))) == 4
    different = [name for name in sorted(_files(raw)) if not _same_content(name, raw, one_part)]
    assert different == []
    lesions = "RenalLesions/lesions.csv"
    pd.testing.assert_frame_equal(pd.read_csv(raw / lesions), pd.read_csv(one_part / lesions))
