"""The cascade against nnU-Net baselines, per case, with paired statistics.

The same as ``renal-nnunet compare`` (see ``renal-nnunet compare --help`` and the README, "Cascade
vs baselines, with paired statistics"); for example, after GPU training on converted data:

    python scripts/compare_baselines.py -m models \
        --one-stage-model $nnUNet_results/Dataset503_RenalOneStage128/nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres \
        --baseline nnunet_cascade=$nnUNet_results/Dataset504_RenalOneStage/nnUNetTrainer__nnUNetPlans__3d_cascade_fullres \
        -i test_images -r test_references --ref-format kits -o comparison --device cuda

Writes ``comparison.csv``/``.json``, ``per_case.csv``, ``statistics.csv``, ``comparison.md`` and
``boxplots.png`` with each method's predictions and evaluation under ``-o``.
"""

import sys

from renal_nnunet.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
