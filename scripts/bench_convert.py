"""Benchmark: per-case conversion time against the I/O floor.

The floor for a case is the time to read its CT and label map and to write volumes identical to
everything the conversion wrote for it (same sizes, types and gzip compression), without any of
the processing. The ratio conversion / floor shows what the processing costs on top of the I/O.

    python scripts/bench_convert.py --kits23 ../shared/kits23/dataset --downsample 1 --grid 128
    python scripts/bench_convert.py --src PATH/TO/KITS/dataset --grid 128 --cases case_00017,case_00061

With ``--kits23`` the real label maps are painted with synthetic CT first (not timed). Prints one
line per case, the median ratio, and the lesion class counts of the converted cases.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from renal_nnunet.dataset_conversion.convert import ConversionConfig, ConversionReport, convert_case, finalize
from renal_nnunet.dataset_conversion.kits import find_kits_cases
from renal_nnunet.io import read_image, read_label_map
from renal_nnunet.settings import PAPER


def io_floor_seconds(case, written: list[Path], scratch: Path) -> float:
    """Seconds to read the case's inputs and write copies of ``written`` with the same compression."""
    images = [sitk.ReadImage(str(p)) for p in written]  # loaded beforehand: not part of the floor
    started = time.perf_counter()
    ct = read_image(case.image_path)
    read_label_map(case.label_path)
    del ct
    for index, image in enumerate(images):
        sitk.WriteImage(image, str(scratch / f"{index}.nii.gz"), useCompression=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--src", type=Path, help="a KiTS21 data/ or KiTS23 dataset/ folder with CT")
    source.add_argument("--kits23", type=Path, help="real KiTS23 dataset/ (labels only): paint CT first")
    parser.add_argument("--downsample", type=int, default=1, help="in-plane downsampling when painting (default 1)")
    parser.add_argument("--cases", default="", help="comma-separated case ids (default all)")
    parser.add_argument("--grid", type=int, default=PAPER.grid)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    wanted = [c for c in args.cases.split(",") if c] or None
    src = args.src
    if args.kits23:
        from renal_nnunet.synthetic import write_painted_kits

        started = time.perf_counter()
        src = write_painted_kits(args.kits23, work / "painted", case_ids=wanted, inplane_downsample=args.downsample)
        print(f"painted {len(list(src.glob('case_*')))} cases in {time.perf_counter() - started:.0f} s (not timed)")
    cases = [c for c in find_kits_cases(src) if wanted is None or c.case_id in wanted]
    config = ConversionConfig(grid=args.grid)
    raw, scratch = work / "raw", work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    report = ConversionReport()
    ratios = []
    print(f"{'case':<12} {'size (x,y,z)':<18} {'convert s':>9} {'floor s':>8} {'ratio':>6} {'files':>5}")
    for case in cases:
        started = time.perf_counter()
        convert_case(case, raw, config)
        seconds = time.perf_counter() - started
        report.converted.append(case.case_id)
        record = (raw / ".renal_nnunet" / f"{case.case_id}.json").read_text()
        written = [raw / f for f in json.loads(record)["files"] if f.endswith(".nii.gz")]
        floor = io_floor_seconds(case, written, scratch)
        ratios.append(seconds / floor)
        size = sitk.ImageFileReader()
        size.SetFileName(str(case.image_path))
        size.ReadImageInformation()
        print(f"{case.case_id:<12} {str(size.GetSize()):<18} {seconds:9.2f} {floor:8.2f} {seconds / floor:6.2f} {len(written):5d}",
              flush=True)
    finalize(raw, config, report)
    print(f"median ratio conversion/floor: {statistics.median(ratios):.2f} over {len(ratios)} cases"
          f" (min {min(ratios):.2f}, max {max(ratios):.2f})")
    table = pd.read_csv(report.lesions_csv)
    print("lesion classes:", table["lesion_class"].value_counts().to_dict())
    print("lesion classes (average diameter > 5 mm):",
          table.loc[table["average_diameter_mm"] > 5, "lesion_class"].value_counts().to_dict())
    print("lesions by side:", table["side"].value_counts().to_dict(), "| datasets:", ", ".join(p.name for p in report.datasets.values()))


if __name__ == "__main__":
    main()
