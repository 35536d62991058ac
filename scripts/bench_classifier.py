"""Classifier cost per training step and per lesion, against the bare network in the same process.

For each grid (default 64 and 128):

* training step: our data path (crop files written by the converter's ``lesion_crop`` ->
  ``LesionCropDataset`` with the paper's augmentation -> DataLoader with class-balanced sampling)
  plus forward/backward/Adam step, against the same step on a batch already in memory (the floor);
* inference per lesion: ``classify_lesions`` with an N-fold ensemble, without and with Grad-CAM,
  against N bare forward passes of a ready crop tensor.

A ratio near 1 means the data path costs little next to the network. Usage::

    python scripts/bench_classifier.py [--grids 64 128] [--steps 3] [--folds 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from renal_nnunet.anatomy.crops import lesion_crop
from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.classification.data import LesionCropDataset, class_balanced_sampler, read_lesion_table
from renal_nnunet.classification.model import build_classifier
from renal_nnunet.classification.predict import classify_lesions
from renal_nnunet.classification.train import CLASSIFIER_AUGMENTATION, crop_augmentation, save_classifier
from renal_nnunet.io import write_image
from renal_nnunet.settings import PAPER
from renal_nnunet.synthetic import make_lesion_patch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_seconds(step, repeats: int, device: torch.device) -> float:
    step()  # warm-up (allocations, cuDNN autotuning)
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _write_lesions(folder: Path, grid: int, per_class: int) -> tuple[Path, list]:
    """Crop files + lesions.csv like the converter's, and the source patches (CT, mask)."""
    rows, patches = [], []
    for kind in LESION_CLASSES:
        for seed in range(per_class):
            ct, mask = make_lesion_patch(kind, seed, (48, 64, 64), (2.0, 1.0, 1.0))
            patches.append((ct, mask))
            write_image(lesion_crop(ct, mask, grid, 1)[0], folder / "crops" / f"{kind}_{seed}_1.nii.gz")
            rows.append({"case_id": f"{kind}_{seed}", "patient_id": f"{kind}_{seed}", "lesion_id": 1,
                         "lesion_class": kind, "fold": seed % 2})
    pd.DataFrame(rows).to_csv(folder / "lesions.csv", index=False)
    return folder, patches


def bench_grid(grid: int, steps: int, folds: int, device: torch.device, workdir: Path) -> dict[str, float]:
    lesions_dir, patches = _write_lesions(workdir / f"lesions_{grid}", grid, per_class=2)
    batch_size = PAPER.batch_size
    model = build_classifier().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=PAPER.learning_rate, weight_decay=PAPER.weight_decay)
    model.train()

    def train_on(volumes, labels):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(volumes.to(device)), labels.to(device)).backward()
        optimizer.step()

    table = read_lesion_table(lesions_dir)
    dataset = LesionCropDataset(table, grid, crop_augmentation(grid))
    sampler = class_balanced_sampler(dataset.labels, batch_size, torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    ours_train = _median_seconds(lambda: train_on(*next(iter(loader))), steps, device)
    ready = torch.rand(batch_size, 1, grid, grid, grid), torch.arange(batch_size) % len(LESION_CLASSES)
    floor_train = _median_seconds(lambda: train_on(*ready), steps, device)

    checkpoints = [save_classifier(build_classifier(), workdir / f"fold_{k}_{grid}.pth", grid, True) for k in range(folds)]
    ct, mask = patches[0]
    classify = lambda cam: classify_lesions(ct, mask, checkpoints, cam=cam, device=str(device))  # noqa: E731
    ours_predict = _median_seconds(lambda: classify(False), steps, device)
    ours_cam = _median_seconds(lambda: classify(True), steps, device)
    eval_model = build_classifier().to(device).eval()
    one = torch.rand(1, 1, grid, grid, grid, device=device)

    def bare_ensemble():
        with torch.no_grad():
            for _ in range(folds):
                eval_model(one)

    floor_predict = _median_seconds(bare_ensemble, steps, device)
    return {"grid": grid, "train_step_s": ours_train, "bare_train_step_s": floor_train,
            "train_ratio": ours_train / floor_train, "ensemble_per_lesion_s": ours_predict,
            "ensemble_with_cam_s": ours_cam, "bare_ensemble_forward_s": floor_predict,
            "predict_ratio": ours_predict / floor_predict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=3, help="timed repeats per measurement (median)")
    parser.add_argument("--folds", type=int, default=5, help="ensemble size")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch 4 for training, "
          f"{args.folds}-fold ensemble, noise sd <= {CLASSIFIER_AUGMENTATION.noise_variance[1] ** 0.5:.2f}")
    with tempfile.TemporaryDirectory() as workdir:
        rows = [bench_grid(grid, args.steps, args.folds, device, Path(workdir)) for grid in args.grids]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
