"""The real CT series (``../shared/realct``) as hospitals and archives export it: a blank SOP Class
UID, blank and absent type 2 attributes, each lossless compressed transfer syntax, a localiser in
the folder. Every variant (20 slices through both kidneys) reads as the same voxels and gives
valid DICOM SEG and SR objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from renal_nnunet.io import find_dicom_series, read_dicom_series, read_series_or_image
from tests.pipeline.real_dicom import REAL_SLICES, TRANSFER_SYNTAXES, real_series_variants

VARIANTS = ("plain", "blank_sop_class", "blank_type2", *TRANSFER_SYNTAXES, "localizer")


@pytest.fixture(scope="module")
def real_variants(realct_series, tmp_path_factory) -> dict[str, Path]:
    return real_series_variants(realct_series, tmp_path_factory.mktemp("real_variants"))


@pytest.fixture(scope="module")
def plain_ct(real_variants) -> sitk.Image:
    return read_series_or_image(real_variants["plain"])


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_each_variant_reads_as_the_same_voxels(real_variants, plain_ct, variant):
    series = find_dicom_series(real_variants[variant])
    ct = read_dicom_series(series)
    syntax = pydicom.dcmread(series.files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax == TRANSFER_SYNTAXES.get(variant, ("1.2.840.10008.1.2",))[0]
    assert [Path(f).name for f in series.files] == sorted(REAL_SLICES, reverse=True)  # ascending z
    assert (ct.GetSize(), ct.GetOrigin(), ct.GetSpacing(), ct.GetDirection()) == \
        (plain_ct.GetSize(), plain_ct.GetOrigin(), plain_ct.GetSpacing(), plain_ct.GetDirection())
    # GDCM reads a JPEG 2000 stream of precision 16 as int32: compare values, not the pixel type.
    assert np.array_equal(sitk.GetArrayViewFromImage(ct).astype(np.int32),
                          sitk.GetArrayViewFromImage(plain_ct).astype(np.int32))
    expected = ("left out 1 localiser image(s) (ImageType LOCALIZER): 0-scout.dcm",) if variant == "localizer" else ()
    assert series.left_out == expected
