"""Training the lesion classifier on the converter's crops (the paper's settings by default).

Paper: 10-layer ResNet, MedicalNet-pretrained ("pretrained=1"), hidden 128, dropout 0.1, batch 4,
400 epochs, learning rate 1e-4 (Adam, as for its U-Nets), augmentation rotation +-10 deg, noise,
translation +-10 %. Per fold this writes into ``<out_dir>/fold_<k>/`` (``fold_all`` without
validation):

* ``checkpoint_latest.pth`` every epoch (model, optimizer, history; training resumes from it),
* ``checkpoint_best.pth`` at the best validation balanced accuracy (the last epoch for ``all``),
* ``log.csv`` (one row per epoch) and ``progress.png`` (loss and accuracy curves).

Checkpoints store the classes, grid and architecture, so :func:`load_classifier` rebuilds the
right model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.classification.data import (
    LesionCropDataset,
    class_balanced_sampler,
    fold_split,
    read_lesion_table,
)
from renal_nnunet.classification.medicalnet import load_medicalnet, read_torch_checkpoint
from renal_nnunet.classification.model import build_classifier
from renal_nnunet.io import InputError, atomic_path, read_image
from renal_nnunet.settings import PAPER
from renal_nnunet.trainers.augmentation import PaperAugmentation, paper_augmentation_transforms

__all__ = ["ClassifierTrainConfig", "train_classifier", "crop_augmentation", "save_classifier", "load_classifier",
           "fold_folder", "BEST_CHECKPOINT", "LATEST_CHECKPOINT"]

log = logging.getLogger(__name__)

BEST_CHECKPOINT = "checkpoint_best.pth"
LATEST_CHECKPOINT = "checkpoint_latest.pth"
LOG_CSV = "log.csv"
PROGRESS_PNG = "progress.png"

# Inputs are windowed HU scaled to [0, 1] (1 = 300 HU). Noise sd up to 0.05 = 15 HU, the quantum
# noise of a routine abdominal CT; the paper gives no magnitude.
CLASSIFIER_AUGMENTATION = PaperAugmentation(noise_variance=(0.0, 0.05**2))


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """Options of :func:`train_classifier` (defaults: the paper's).

    Attributes:
        fold: validation fold (0..4) from the table's ``fold`` column; None trains on all lesions.
        epochs: training epochs (one epoch = as many class-balanced draws as training lesions).
        batch_size: lesions per step.
        learning_rate: Adam learning rate.
        grid: network input edge in voxels; None uses the crops' own size (the converter's grid).
        dilated: MedicalNet's dilated ResNet-10 (output stride 8) or the plain one.
        pretrained: a MedicalNet ``resnet_10`` checkpoint for the backbone, or None.
        device: torch device, e.g. ``cpu`` or ``cuda``.
        augment: apply the paper's augmentation to training crops.
        seed: seeds weights, sampling and augmentation (per epoch, so resuming replays the same draws).
        num_workers: DataLoader worker processes.
        resume: continue from ``checkpoint_latest.pth`` if the fold folder has one.
    """

    fold: int | None = 0
    epochs: int = PAPER.epochs
    batch_size: int = PAPER.batch_size
    learning_rate: float = PAPER.learning_rate
    grid: int | None = None
    dilated: bool = True
    pretrained: str | None = None
    device: str = "cpu"
    augment: bool = True
    seed: int = 0
    num_workers: int = 0
    resume: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.grid is not None and self.grid < 8:
            raise ValueError(f"grid must be at least 8 voxels (the network downsamples 8x), got {self.grid}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


def fold_folder(out_dir: str | os.PathLike, fold: int | None) -> Path:
    """``<out_dir>/fold_<k>`` (``fold_all`` for training on every lesion)."""
    return Path(out_dir) / f"fold_{'all' if fold is None else fold}"


def train_classifier(lesions_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     config: ClassifierTrainConfig = ClassifierTrainConfig()) -> Path:
    """Train one fold of the lesion classifier; returns the best checkpoint's path.

    Args:
        lesions_dir: the converter's ``RenalLesions`` folder (``lesions.csv`` + ``crops/``).
        out_dir: parent of the ``fold_<k>`` folder written here.
        config: training options.

    Raises:
        InputError: bad lesion table, crops or pretrained checkpoint, or a checkpoint to resume
            from that was trained with other classes, grid or architecture.
        ValueError: the fold does not exist.
    """
    table = read_lesion_table(lesions_dir)
    train_rows, val_rows = fold_split(table, config.fold)
    grid = config.grid or read_image(train_rows["crop_path"].iloc[0]).GetSize()[0]
    folder = fold_folder(out_dir, config.fold)
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)

    torch.manual_seed(config.seed)
    model = build_classifier(len(LESION_CLASSES), config.dilated)
    if config.pretrained:
        load_medicalnet(model, config.pretrained)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=PAPER.weight_decay)
    identity = {"classes": list(LESION_CLASSES), "grid": int(grid), "dilated": bool(config.dilated)}
    history: list[dict] = []
    latest = folder / LATEST_CHECKPOINT
    if config.resume and latest.is_file():
        history = _resume(latest, identity, model, optimizer)
    best = max((row["val_balanced_accuracy"] for row in history), default=-np.inf)

    augment = crop_augmentation(grid) if config.augment else None
    train_set = LesionCropDataset(train_rows, grid, augment)
    val_loader = DataLoader(LesionCropDataset(val_rows, grid), batch_size=config.batch_size,
                            num_workers=config.num_workers)
    log.info("classifier fold %s: %d training / %d validation lesions, grid %d, epochs %d (from %d)",
             config.fold, len(train_rows), len(val_rows), grid, config.epochs, len(history))
    for epoch in tqdm(range(len(history), config.epochs), desc=f"classifier fold {config.fold}",
                      initial=len(history), total=config.epochs, unit="epoch"):
        started = time.perf_counter()
        train_loss, train_accuracy = _train_epoch(model, optimizer, train_set, config, epoch, device)
        val = _evaluate(model, val_loader, device) if len(val_rows) else {}
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
               "val_loss": val.get("loss", np.nan), "val_accuracy": val.get("accuracy", np.nan),
               "val_balanced_accuracy": val.get("balanced_accuracy", np.nan),
               "seconds": time.perf_counter() - started}
        history.append(row)
        # Without validation every epoch is "best", so the best checkpoint is the last one.
        improved = not len(val_rows) or row["val_balanced_accuracy"] > best
        if improved:
            best = row["val_balanced_accuracy"] if len(val_rows) else best
            save_classifier(model, folder / BEST_CHECKPOINT, grid, config.dilated, epoch=epoch, metrics=row,
                            config=_config_dict(config))
        save_classifier(model, latest, grid, config.dilated, optimizer_state=optimizer.state_dict(), epoch=epoch,
                        history=history, config=_config_dict(config))
        _write_log(history, folder)
        log.debug("epoch %d: %s", epoch, row)
    return folder / BEST_CHECKPOINT


def crop_augmentation(grid: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The trainers' paper augmentation (rotation, in-plane shift, noise) for one (1, D, H, W) crop
    (network input of :func:`~renal_nnunet.classification.data.crop_to_input`).

    What rotation and shift bring in from outside the crop takes the crop's own outside-the-lesion
    value, its minimum (lesion voxels lie in the window, the fill at or below its floor), so
    augmented crops show no artificial edges whatever fill their crops were made with.
    """
    return lambda volume: paper_augmentation_transforms(
        (grid,) * 3, CLASSIFIER_AUGMENTATION, seg_fill=0, image_fill=float(volume.min()))(image=volume)["image"]


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, train_set: LesionCropDataset,
                 config: ClassifierTrainConfig, epoch: int, device: torch.device) -> tuple[float, float]:
    # Seeding per epoch makes a resumed run draw the same lesions and augmentations.
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    torch.manual_seed(config.seed * 100_003 + epoch)
    np.random.seed((config.seed * 100_003 + epoch) % 2**32)
    sampler = class_balanced_sampler(train_set.labels, len(train_set), generator)
    loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                        drop_last=len(train_set) > config.batch_size,  # BatchNorm cannot train on one sample
                        worker_init_fn=_seed_numpy_in_worker)
    model.train()
    losses, correct, seen = [], 0, 0
    for volumes, labels in tqdm(loader, desc=f"epoch {epoch}", leave=False, unit="batch"):
        volumes, labels = volumes.to(device), labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(volumes)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
    return float(np.mean(losses)), correct / max(seen, 1)


def _seed_numpy_in_worker(worker_id: int) -> None:
    """The augmentation draws from numpy's global generator, which forked workers would share."""
    np.random.seed(torch.initial_seed() % 2**32)


@torch.no_grad()
def _evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    model.eval()
    losses, predictions, truths = [], [], []
    for volumes, labels in loader:
        logits = model(volumes.to(device))
        losses.append(F.cross_entropy(logits, labels.to(device), reduction="sum").item())
        predictions.append(logits.argmax(1).cpu().numpy())
        truths.append(labels.numpy())
    predictions, truths = np.concatenate(predictions), np.concatenate(truths)
    return {"loss": float(np.sum(losses) / len(truths)), "accuracy": float(np.mean(predictions == truths)),
            "balanced_accuracy": float(balanced_accuracy_score(truths, predictions))}


def _config_dict(config: ClassifierTrainConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}


def save_classifier(model: nn.Module, path: str | os.PathLike, grid: int, dilated: bool, **extra) -> Path:
    """Write a checkpoint :func:`load_classifier` can rebuild (atomically).

    Args:
        model: a classifier from :func:`build_classifier` with ``LESION_CLASSES`` outputs.
        grid: input edge in voxels it was trained at.
        dilated: its architecture flag.
        extra: more entries (``epoch``, ``metrics``, ``config``, ``optimizer_state``, ``history``).
    """
    payload = {"classes": list(LESION_CLASSES), "grid": int(grid), "dilated": bool(dilated),
               "model_state": model.state_dict(), **extra}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _resume(path: Path, identity: dict, model: nn.Module, optimizer: torch.optim.Optimizer) -> list[dict]:
    checkpoint = _read_checkpoint(path)
    different = {k: (checkpoint.get(k), v) for k, v in identity.items() if checkpoint.get(k) != v}
    if different:
        raise InputError(path, f"cannot resume: trained with different settings {different} "
                               "(checkpoint value, requested value); use another -o/--output or delete it")
    model.load_state_dict(checkpoint["model_state"])
    optimizer.load_state_dict(checkpoint["optimizer_state"])
    log.info("resuming %s after epoch %d", path, checkpoint["epoch"])
    return list(checkpoint["history"])


def _write_log(history: list[dict], folder: Path) -> None:
    frame = pd.DataFrame(history)
    with atomic_path(folder / LOG_CSV) as tmp:
        frame.to_csv(tmp, index=False)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(frame["epoch"], frame["train_loss"], label="training")
    loss_axis.plot(frame["epoch"], frame["val_loss"], label="validation")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy loss")
    accuracy_axis.plot(frame["epoch"], frame["train_accuracy"], label="training accuracy")
    accuracy_axis.plot(frame["epoch"], frame["val_accuracy"], label="validation accuracy")
    accuracy_axis.plot(frame["epoch"], frame["val_balanced_accuracy"], label="validation balanced accuracy")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    for axis in (loss_axis, accuracy_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(folder / PROGRESS_PNG) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def _read_checkpoint(path: str | os.PathLike) -> dict:
    checkpoint = read_torch_checkpoint(path, "classifier checkpoint")
    required = ("model_state", "classes", "grid", "dilated")
    missing = [k for k in required if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise InputError(path, f"is not a renal_nnunet classifier checkpoint (lacks {missing}); "
                               "train one with `renal-nnunet classifier train`")
    return checkpoint


def load_classifier(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained classifier from its checkpoint, in eval mode.

    Returns:
        The model and the checkpoint's description (``classes``, ``grid``, ``dilated``, ``epoch``...).

    Raises:
        InputError: missing or unreadable file, not a classifier checkpoint, or other classes than
            ``LESION_CLASSES``.
    """
    checkpoint = _read_checkpoint(path)
    if list(checkpoint["classes"]) != list(LESION_CLASSES):
        raise InputError(path, f"classifier classes {checkpoint['classes']} differ from {list(LESION_CLASSES)}")
    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        model = build_classifier(len(LESION_CLASSES), bool(checkpoint["dilated"]))
    try:
        model.load_state_dict(checkpoint["model_state"], assign=True)
    except RuntimeError as err:
        raise InputError(path, f"weights do not fit the classifier: {str(err).splitlines()[0]}") from None
    info = {k: v for k, v in checkpoint.items() if k not in ("model_state", "optimizer_state", "history")}
    return model.to(device).eval(), info
