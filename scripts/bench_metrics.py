#!/usr/bin/env python
"""Benchmark renal_nnunet's surface metrics against MedPy, and cc3d against scipy.ndimage.label.

1. HD / HD95 / ASSD of one kidney-sized pair on a 512x512x200 volume (spacing 0.8/0.8/1.5 mm):
   MedPy's ``hd``, ``hd95`` and ``assd`` on the full volume (what users call) against one
   ``segmentation_metrics`` call (union-box crop + one EDT per direction), in the same process.
   Prints both values and the speed ratio.
2. Connected components (26-connectivity) of a many-blob mask: ``cc3d.connected_components``
   against ``scipy.ndimage.label``; prints both times and checks the partitions are identical.

Usage: .venv/bin/python scripts/bench_metrics.py [--shape 200 512 512] [--spacing 1.5 0.8 0.8] [--skip-medpy]
"""

from __future__ import annotations

import argparse
import time

import cc3d
import numpy as np
from scipy import ndimage

from renal_nnunet.evaluation import segmentation_metrics


def kidney_pair(shape: tuple[int, int, int], spacing_mm: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A kidney-sized ellipsoid (about 11 x 6 x 5 cm) and a perturbed prediction of it."""
    rng = np.random.default_rng(seed)
    centre = np.asarray(shape) / 2.0
    radii_vox = np.array([55.0, 30.0, 25.0]) / spacing_mm
    zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in shape)]
    ref = ((zz - centre[0]) / radii_vox[0]) ** 2 + ((yy - centre[1]) / radii_vox[1]) ** 2 + ((xx - centre[2]) / radii_vox[2]) ** 2 <= 1
    shift = np.array([2.0, -3.0, 4.0]) / spacing_mm
    pred = ((zz - centre[0] - shift[0]) / (radii_vox[0] * 1.05)) ** 2 + ((yy - centre[1] - shift[1]) / radii_vox[1]) ** 2 + (
        (xx - centre[2] - shift[2]) / (radii_vox[2] * 0.95)) ** 2 <= 1
    # A false-positive blob some distance away, as real predictions have.
    blob = tuple(slice(int(c + d), int(c + d + w)) for c, d, w in zip(centre, (10, 45, -5), (8, 12, 10)))
    pred[blob] = True
    noise = ndimage.binary_opening(rng.random(shape) > 0.9995)
    return pred | noise, ref


def time_call(function, *args, **kwargs) -> tuple[float, float]:
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def bench_surface(shape, spacing_mm: np.ndarray, seed: int, skip_medpy: bool) -> None:
    pred, ref = kidney_pair(shape, spacing_mm, seed)
    print(f"pair: shape {shape} (z, y, x), spacing {tuple(float(s) for s in spacing_mm)} mm, pred {pred.sum()} / ref {ref.sum()} voxels")
    ours, ours_s = time_call(segmentation_metrics, pred, ref, tuple(spacing_mm))
    print(f"renal_nnunet segmentation_metrics (all metrics, one call): {ours_s:.3f} s")
    if skip_medpy:
        for name in ("hd_mm", "hd95_mm", "hd95_max_mm", "assd_mm"):
            print(f"  {name:12s} {ours[name]:.4f}")
        return
    from medpy.metric import binary

    medpy_total = 0.0
    for name, function in (("hd_mm", binary.hd), ("hd95_mm", binary.hd95), ("assd_mm", binary.assd)):
        value, seconds = time_call(function, pred, ref, voxelspacing=tuple(spacing_mm))
        medpy_total += seconds
        print(f"  {name:8s} medpy {value:.6f} ({seconds:.2f} s)  renal_nnunet {ours[name]:.6f}  "
              f"relative difference {abs(value - ours[name]) / max(abs(value), 1e-12):.1e}  speed-up per call {seconds / ours_s:.0f}x")
    print(f"  hd95_max_mm (MONAI definition) {ours['hd95_max_mm']:.6f}")
    print(f"MedPy total {medpy_total:.2f} s for three calls vs {ours_s:.3f} s: {medpy_total / ours_s:.0f}x")


def bench_components(shape, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 2.0) > 0.53
    cc3d_labels, cc3d_s = time_call(cc3d.connected_components, mask, connectivity=26)
    (scipy_labels, scipy_count), scipy_s = time_call(ndimage.label, mask, structure=np.ones((3, 3, 3), bool))
    pairs = np.unique(np.stack([cc3d_labels[mask].astype(np.int64), scipy_labels[mask].astype(np.int64)]), axis=1)
    same = pairs.shape[1] == scipy_count == int(cc3d_labels.max()) and len(np.unique(pairs[0])) == pairs.shape[1]
    print(f"components of a {mask.mean():.1%} mask, shape {shape}: cc3d {cc3d_s:.3f} s, scipy.ndimage.label "
          f"{scipy_s:.3f} s ({scipy_s / cc3d_s:.1f}x); {scipy_count} components; same partition: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), help="volume shape (z, y, x)")
    parser.add_argument("--spacing", type=float, nargs=3, default=(1.5, 0.8, 0.8), help="spacing (z, y, x) in mm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-medpy", action="store_true", help="time renal_nnunet only")
    args = parser.parse_args()
    shape = tuple(args.shape)
    bench_surface(shape, np.asarray(args.spacing, float), args.seed, args.skip_medpy)
    bench_components(shape, args.seed)


if __name__ == "__main__":
    main()
