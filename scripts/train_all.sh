#!/usr/bin/env bash
# Train every fold of every model the paper and its comparison need, through stock nnU-Net commands.
#
#   kidney U-Net          Dataset{N}_RenalKidney{G}      nnUNetTrainerRenalPaper  3d_fullres
#   mass U-Net            Dataset{N+1}_RenalMass{G}      nnUNetTrainerRenalPaper  3d_fullres
#   one-stage ablation    Dataset{N+2}_RenalOneStage{G}  nnUNetTrainerRenalPaper  3d_fullres
#   nnU-Net baseline      Dataset{N+3}_RenalOneStage     nnUNetTrainer (stock)    3d_fullres
#
# Resumable: finished folds (checkpoint_final.pth + validation/summary.json) are skipped, started
# ones continue with --c, unplanned datasets are planned first (renal-nnunet plan: stock planning
# + the converter's patient-grouped splits). Every command is printed before it runs.
#
# Usage: scripts/train_all.sh [--first-id 501] [--grid 128] [--folds "0 1 2 3 4"] [--device cuda]
#                             [--trainer nnUNetTrainerRenalPaper] [--baseline-trainer nnUNetTrainer]
#                             [--dry-run]
# Needs nnUNet_raw, nnUNet_preprocessed and nnUNet_results set (see README).
set -euo pipefail

first_id=501 grid=128 folds="0 1 2 3 4" device=cuda trainer=nnUNetTrainerRenalPaper
baseline_trainer=nnUNetTrainer dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --first-id) first_id="$2"; shift 2 ;;
    --grid) grid="$2"; shift 2 ;;
    --folds) folds="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --trainer) trainer="$2"; shift 2 ;;
    --baseline-trainer) baseline_trainer="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "train_all.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
: "${nnUNet_raw:?set nnUNet_raw}" "${nnUNet_preprocessed:?set nnUNet_preprocessed}" "${nnUNet_results:?set nnUNet_results}"

# Stock nnU-Net commands find this package's trainers through nnUNet_extTrainer.
eval "$(renal-nnunet env)"
echo "+ export nnUNet_extTrainer=$nnUNet_extTrainer"

run() {
  echo "+ $*"
  if [[ $dry_run -eq 0 ]]; then "$@"; fi
}

models=(
  "$first_id RenalKidney$grid $trainer"
  "$((first_id + 1)) RenalMass$grid $trainer"
  "$((first_id + 2)) RenalOneStage$grid $trainer"
  "$((first_id + 3)) RenalOneStage $baseline_trainer"
)
for model in "${models[@]}"; do
  read -r id name model_trainer <<< "$model"
  dataset=$(printf "Dataset%03d_%s" "$id" "$name")
  if [[ ! -d "$nnUNet_raw/$dataset" ]]; then
    echo "train_all.sh: $nnUNet_raw/$dataset missing; run renal-nnunet convert first" >&2
    exit 1
  fi
  if [[ ! -f "$nnUNet_preprocessed/$dataset/nnUNetPlans.json" ]]; then
    run renal-nnunet plan -d "$id" -c 3d_fullres
  fi
  for fold in $folds; do
    out="$nnUNet_results/$dataset/${model_trainer}__nnUNetPlans__3d_fullres/fold_$fold"
    if [[ -f "$out/checkpoint_final.pth" && -f "$out/validation/summary.json" ]]; then
      echo "done: $dataset $model_trainer fold $fold"
      continue
    fi
    resume=()
    if [[ -f "$out/checkpoint_latest.pth" || -f "$out/checkpoint_final.pth" ]]; then resume=(--c); fi
    run nnUNetv2_train "$id" 3d_fullres "$fold" -tr "$model_trainer" -device "$device" "${resume[@]}"
  done
done
