"""Does the classifier crop's fill outside the lesion hide an AML's fat? Measured, per fill.

Synthetic lesions of the three classes (``make_lesion_patch``), with every AML's fat moved to one
level drawn from -150 to -50 HU (the generator paints -110 to -70), so part of the fat lies below
the paper window's floor (-120 HU) and clips to it. For each fill the crops are made by the
converter's ``lesion_crop`` with that fill, the classifier is trained from scratch with
``train_classifier`` on all training lesions (fixed epochs, no model selection), and scored on
held-out lesions: AML recall and balanced accuracy (scikit-learn), per seed and as mean +- sd.
Each seed draws its own lesions and its own initialisation.

The reference run is today's fill, the window floor (-120 HU: clipped fat and "outside" look
alike); the alternative fills below the window (-420 HU, -1 after scaling: fat stays apart).
Usage::

    nice -n 10 python scripts/bench_lesion_fill.py [--seeds 0 1 2 3 4] [--train-per-class 8]
        [--test-per-class 12] [--epochs 10] [--grid 16]

The defaults are the run in README (4-9 minutes per fill and seed on two shared CPU cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
from sklearn.metrics import balanced_accuracy_score, recall_score

from renal_nnunet.anatomy.crops import BELOW_WINDOW_HU, WINDOW_FLOOR_HU, lesion_crop
from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.classification.data import crop_to_input
from renal_nnunet.classification.train import ClassifierTrainConfig, load_classifier, train_classifier
from renal_nnunet.io import write_image
from renal_nnunet.synthetic import make_lesion_patch

FILLS_HU = {"window floor (-120 HU, reference)": WINDOW_FLOOR_HU, "below the window (-420 HU)": BELOW_WINDOW_HU}
AML_FAT_HU = (-150.0, -50.0)
FAT_BELOW_HU = -25.0
"""The generator's AML fat (-110 to -70 HU, noise sd <= 16) lies below this, its soft tissue
(>= 20 HU) above."""
PATCH_ZYX = (32, 32, 32)


def lesion(kind: str, seed: int) -> tuple[sitk.Image, sitk.Image]:
    """One synthetic lesion patch (CT in HU, mask); an AML's fat is moved to a level in AML_FAT_HU."""
    ct, mask = make_lesion_patch(kind, seed, PATCH_ZYX)
    if kind != "AML":
        return ct, mask
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    fat = (sitk.GetArrayViewFromImage(mask) > 0) & (array < FAT_BELOW_HU)
    level = np.random.default_rng(seed + 7_919).uniform(*AML_FAT_HU)
    array[fat] += level - array[fat].mean()
    return image_like(np.rint(array).astype(np.int16), ct), mask


def write_lesions(folder: Path, seeds: range, fill_hu: float, grid: int) -> Path:
    """Crops + lesions.csv in the converter's layout (one lesion per patient)."""
    rows = []
    for kind in LESION_CLASSES:
        for seed in seeds:
            case_id = f"{kind}_{seed}"
            write_image(lesion_crop(*lesion(kind, seed), grid, 1, outside_hu=fill_hu)[0],
                        folder / "crops" / f"{case_id}_1.nii.gz")
            rows.append({"case_id": case_id, "patient_id": case_id, "lesion_id": 1, "lesion_class": kind})
    pd.DataFrame(rows).to_csv(folder / "lesions.csv", index=False)
    return folder


@torch.no_grad()
def score(checkpoint: Path, folder: Path) -> dict[str, float]:
    """AML recall and balanced accuracy of a checkpoint on a lesion folder."""
    model, _ = load_classifier(checkpoint)
    table = pd.read_csv(folder / "lesions.csv")
    truth = table["lesion_class"].map(LESION_CLASSES.index).to_numpy()
    inputs = torch.stack([crop_to_input(sitk.ReadImage(str(folder / "crops" / f"{case}_1.nii.gz")))
                          for case in table["case_id"]])
    predicted = model(inputs).argmax(1).numpy()
    aml = LESION_CLASSES.index("AML")
    return {"aml_recall": float(recall_score(truth, predicted, labels=[aml], average="macro")),
            "balanced_accuracy": float(balanced_accuracy_score(truth, predicted))}


def run(seed: int, fill_hu: float, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    first_test = 10_000 + 1_000 * seed
    train = write_lesions(workdir / f"train_{seed}_{fill_hu:g}", range(1_000 * seed, 1_000 * seed + args.train_per_class),
                          fill_hu, args.grid)
    test = write_lesions(workdir / f"test_{seed}_{fill_hu:g}", range(first_test, first_test + args.test_per_class),
                         fill_hu, args.grid)
    config = ClassifierTrainConfig(fold=None, epochs=args.epochs, learning_rate=1e-3, seed=seed)
    started = time.perf_counter()
    checkpoint = train_classifier(train, workdir / f"model_{seed}_{fill_hu:g}", config)
    return {**score(checkpoint, test), "train_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--train-per-class", type=int, default=8)
    parser.add_argument("--test-per-class", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--grid", type=int, default=16)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            for name, fill_hu in FILLS_HU.items():
                rows.append({"fill": name, "seed": seed, **run(seed, fill_hu, args, Path(workdir))})
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby("fill", sort=False)[["aml_recall", "balanced_accuracy"]].agg(["mean", "std"])
    print(f"\n{args.train_per_class} training / {args.test_per_class} held-out lesions per class, grid {args.grid}, "
          f"{args.epochs} epochs, AML fat {AML_FAT_HU[0]:g} to {AML_FAT_HU[1]:g} HU, seeds {args.seeds}")
    print(summary.round(3).to_string())
    reference = summary.iloc[0]
    for name, row in summary.iloc[1:].iterrows():
        print(f"{name} vs reference: AML recall {row[('aml_recall', 'mean')] - reference[('aml_recall', 'mean')]:+.3f}, "
              f"balanced accuracy {row[('balanced_accuracy', 'mean')] - reference[('balanced_accuracy', 'mean')]:+.3f}")


if __name__ == "__main__":
    main()
