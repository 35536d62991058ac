"""Per-iteration time of nnUNetTrainerRenalPaper against stock nnUNetTrainer on the same data.

For each grid G: synthetic phantoms -> ``renal-nnunet convert`` (kidney dataset, G^3) -> stock
planning -> both trainers built from the same plans; ``--warmup`` untimed iterations, then the mean wall
time of ``--iterations`` training iterations (batch fetch with single-threaded augmentation +
``train_step``). Prints one row per trainer and the ratio paper / stock, in this process.

    .venv/bin/python scripts/bench_trainer.py --grids 32 64 128 --iterations 2 --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def _prepare(root: Path, grid: int, cases: int) -> dict:
    from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
    from renal_nnunet.nnunet.commands import plan
    from renal_nnunet.synthetic import write_synthetic_kits

    src = write_synthetic_kits(root / "kits", cases, layout="kits23", seed=0)
    report = convert_kits(src, root / "nnUNet_raw", ConversionConfig(first_id=990, grid=grid))
    if not report.ok:
        raise RuntimeError(report.summary())
    preprocessed = plan(990, num_processes=1)
    return {"plans": json.loads((preprocessed / "nnUNetPlans.json").read_text()),
            "dataset_json": json.loads((preprocessed / "dataset.json").read_text())}


def _seconds_per_iteration(trainer_class, data: dict, iterations: int, warmup: int,
                           device: str) -> tuple[float, object]:
    import torch

    plans = json.loads(json.dumps(data["plans"]))
    plans["continue_training"] = False
    trainer = trainer_class(plans, "3d_fullres", 0, data["dataset_json"], device=torch.device(device))
    trainer.initialize()
    loader, val_loader = trainer.get_dataloaders()
    trainer.network.train()
    for _ in range(warmup):
        trainer.train_step(next(loader))
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        trainer.train_step(next(loader))
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / iterations
    for generator in (loader, val_loader):
        if hasattr(generator, "_finish"):
            generator._finish()
    return elapsed, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default 1)")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    # augmentation in this process by default, so its time is counted
    augmentation_processes = int(os.environ.get("nnUNet_n_proc_DA", 0))
    os.environ.setdefault("nnUNet_compile", "false")

    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from renal_nnunet.nnunet.environment import NnunetFolders, nnunet_environment
    from renal_nnunet.trainers.paper import nnUNetTrainerRenalPaper

    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {args.iterations} timed iterations")
    print(f"{'grid':>5} {'trainer':<26} {'batch':>5} {'features':<28} {'s/iteration':>11}")
    for grid in args.grids:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            # planning needs at least one augmentation worker (0 crashes nnU-Net's planner:
            # torch.set_num_threads(0)); nnunet_environment's default is 1
            with nnunet_environment(NnunetFolders.under(root)):
                data = _prepare(root, grid, args.cases)
            times = {}
            for trainer_class in (nnUNetTrainer, nnUNetTrainerRenalPaper):
                with nnunet_environment(NnunetFolders.under(root), augmentation_processes):
                    seconds, trainer = _seconds_per_iteration(trainer_class, data, args.iterations, args.warmup,
                                                              args.device)
                times[trainer_class.__name__] = seconds
                features = list(trainer.network.encoder.output_channels)
                print(f"{grid:>5} {trainer_class.__name__:<26} {trainer.batch_size:>5} {str(features):<28} "
                      f"{seconds:>11.2f}", flush=True)
            ratio = times["nnUNetTrainerRenalPaper"] / times["nnUNetTrainer"]
            print(f"{grid:>5} ratio paper / nnUNetTrainer: {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
