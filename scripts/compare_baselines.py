"""Cascade vs one-stage grid model vs stock nnU-Net 3d_fullres on the same test cases.

The same as ``renal-nnunet compare`` (see ``renal-nnunet compare --help``); for example, after GPU
training of the three models on converted data:

    python scripts/compare_baselines.py -m models \
        --one-stage-model $nnUNet_results/Dataset503_RenalOneStage128/nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres \
        --fullres-model $nnUNet_results/Dataset504_RenalOneStage/nnUNetTrainer__nnUNetPlans__3d_fullres \
        -i test_images -r test_references -o comparison --device cuda

Writes ``comparison.csv``/``.json`` (kidney/mass Dice per side, HD, lesion recall/precision, KiTS
HEC Dice, seconds per case) and each method's predictions and evaluation under ``-o``.
"""

import sys

from renal_nnunet.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
