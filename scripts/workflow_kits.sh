#!/usr/bin/env bash
# The README's "Workflow on real data", from a KiTS21/23 folder to the comparison table:
#
#   convert -> plan -> nnUNetv2_train (kidney, mass and one-stage grid U-Nets, then the stock nnU-Net
#   BASELINES) -> classifier train -> assemble-models -> predict on the held-out CTs -> evaluate
#   --ref-format kits -> compare
#
# Usage: scripts/workflow_kits.sh KITS_DIR WORK_DIR
#   KITS_DIR  KiTS23 dataset/ or KiTS21 data/ (case_XXXXX/ folders + kits23.json / kits.json), or its parent
#   WORK_DIR  everything is written here (nnU-Net's three folders too, unless they are set)
#
# Settings (environment variables; defaults are the paper's, see README "Workflow on real data"):
#   FIRST_ID=501                        kidney dataset id (mass +1, one-stage grid +2, one-stage native +3)
#   GRID=128                            grid edge of both U-Nets and the classifier crops, voxels
#   TRAINER=nnUNetTrainerRenalPaper     trainer of the kidney, mass and one-stage grid U-Nets
#   FOLDS="0 1 2 3 4"                   folds trained and ensembled (U-Nets and classifier)
#   DEVICE=cuda                         torch device: cuda, cpu or mps
#   CLASSIFIER_EPOCHS=400               epochs of each classifier fold
#   PRETRAINED=                         MedicalNet resnet_10.pth for the classifier's backbone (optional)
#   TEST_CASES=                         held-out case ids, space-separated (default: every fifth case folder)
#   TEST_IMAGES=                        the held-out CTs: a NIfTI file or folder, DICOM series folder(s)
#                                       (default: links to the held-out cases' imaging.nii.gz)
#   TEST_REFERENCES=                    their references in KiTS labels, named like the CTs
#                                       (default: links to the held-out cases' KiTS label maps)
#   BASELINES="3d_fullres 3d_cascade_fullres resenc_m"
#                                       stock nnU-Net baselines trained on the native-resolution one-stage
#                                       dataset and compared, any of: 3d_fullres 3d_lowres 3d_cascade_fullres
#                                       resenc_m resenc_l resenc_xl (empty: none). The default is nnU-Net's
#                                       original configuration, its KiTS21 cascade and the residual-encoder
#                                       preset nnU-Net asks new methods to be compared with at matching
#                                       compute (ResEnc M, ~9 GB; the paper's U-Nets are smaller still).
#                                       resenc_l, nnU-Net's recommended default, needs a 24 GB GPU and
#                                       ~35 A100-hours a fold (README "Baselines")
#   BASELINE_TRAINER=nnUNetTrainer      trainer of the baselines
#   WORKERS=4                           processes for conversion and preprocessing
#
# The held-out cases never reach the training data: convert reads WORK_DIR/kits_train, which links
# every other case folder. Every command is printed before it runs; the first error stops the run.
# Resumable: conversion skips unchanged cases, planned datasets are not planned again, finished
# folds are skipped and interrupted ones continue (--c), classifier folds resume from their latest
# checkpoint.
set -euo pipefail

shopt -s nullglob
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d'; }
if [[ ${1:-} == -h || ${1:-} == --help ]]; then usage; exit 0; fi
if [[ $# -ne 2 ]]; then usage >&2; exit 2; fi
fail() { echo "workflow_kits.sh: $*" >&2; exit 1; }
run() {
  echo "+ $*"
  "$@"
}
command -v renal-nnunet > /dev/null || fail "renal-nnunet not on PATH (source .venv/bin/activate first)"

# Defaults fill unset or empty settings, except BASELINES (no colon): BASELINES= chooses no baseline.
: "${FIRST_ID:=501}" "${GRID:=128}" "${TRAINER:=nnUNetTrainerRenalPaper}" "${FOLDS:=0 1 2 3 4}"
: "${DEVICE:=cuda}" "${CLASSIFIER_EPOCHS:=400}" "${PRETRAINED:=}" "${TEST_CASES:=}" "${TEST_IMAGES:=}"
: "${TEST_REFERENCES:=}" "${BASELINES=3d_fullres 3d_cascade_fullres resenc_m}" "${BASELINE_TRAINER:=nnUNetTrainer}"
: "${WORKERS:=4}"
[[ $FIRST_ID =~ ^[0-9]+$ ]] && ((FIRST_ID >= 100 && FIRST_ID <= 996)) \
  || fail "FIRST_ID=$FIRST_ID: give a dataset id from 100 to 996 (the four datasets take FIRST_ID..FIRST_ID+3)"
# Each name once, in the order given; an unknown one stops the run here, before anything is written.
KNOWN_BASELINES="3d_fullres 3d_lowres 3d_cascade_fullres resenc_m resenc_l resenc_xl"
read -ra asked <<< "$BASELINES"
baselines=()
for baseline in "${asked[@]}"; do
  [[ " $KNOWN_BASELINES " == *" $baseline "* ]] \
    || fail "BASELINES: unknown baseline '$baseline'; give names from: $KNOWN_BASELINES (or BASELINES= for none)"
  [[ " ${baselines[*]} " == *" $baseline "* ]] || baselines+=("$baseline")
done
[[ -z $PRETRAINED || -f $PRETRAINED ]] || fail "PRETRAINED=$PRETRAINED: no such file"

KITS_DIR=$(cd "$1" && pwd) || fail "KITS_DIR $1 does not exist"
mkdir -p "$2"
WORK_DIR=$(cd "$2" && pwd)
for child in dataset data; do
  cases=("$KITS_DIR"/case_*/)
  if ((${#cases[@]} == 0)) && [[ -d $KITS_DIR/$child ]]; then KITS_DIR=$KITS_DIR/$child; fi
done
if [[ -f $KITS_DIR/kits23.json ]]; then metadata=kits23.json label_file=segmentation.nii.gz
elif [[ -f $KITS_DIR/kits.json ]]; then metadata=kits.json label_file=aggregated_MAJ_seg.nii.gz
else fail "$KITS_DIR: no kits23.json (KiTS23 dataset/) or kits.json (KiTS21 data/)"
fi
export nnUNet_raw=${nnUNet_raw:-$WORK_DIR/nnUNet_raw}
export nnUNet_preprocessed=${nnUNet_preprocessed:-$WORK_DIR/nnUNet_preprocessed}
export nnUNet_results=${nnUNet_results:-$WORK_DIR/nnUNet_results}

# Hold the test cases out: convert reads TRAIN_KITS, which links every other case folder.
all_cases=()
for dir in "$KITS_DIR"/case_*/; do all_cases+=("$(basename "$dir")"); done
if [[ -z $TEST_CASES ]]; then
  for i in "${!all_cases[@]}"; do
    if ((i % 5 == 4)); then TEST_CASES+="${all_cases[i]} "; fi
  done
fi
declare -A held_out=()
for case in $TEST_CASES; do
  [[ -d $KITS_DIR/$case ]] || fail "TEST_CASES: $KITS_DIR/$case does not exist"
  held_out[$case]=1
done
n_train=$((${#all_cases[@]} - ${#held_out[@]}))
((${#held_out[@]} >= 1 && n_train >= 5)) \
  || fail "$KITS_DIR: ${#all_cases[@]} case folders, ${#held_out[@]} held out; need at least 1 to test and 5 to train (five folds)"
TRAIN_KITS=$WORK_DIR/kits_train
rm -rf "$TRAIN_KITS"
mkdir -p "$TRAIN_KITS"
ln -s "$KITS_DIR/$metadata" "$TRAIN_KITS/$metadata"
for case in "${all_cases[@]}"; do
  if [[ -z ${held_out[$case]:-} ]]; then ln -s "$KITS_DIR/$case" "$TRAIN_KITS/$case"; fi
done
if [[ -z $TEST_IMAGES || -z $TEST_REFERENCES ]]; then
  [[ -z $TEST_IMAGES && -z $TEST_REFERENCES ]] || fail "set both TEST_IMAGES and TEST_REFERENCES, or neither"
  TEST_IMAGES=$WORK_DIR/test/images TEST_REFERENCES=$WORK_DIR/test/references
  rm -rf "$WORK_DIR/test"
  mkdir -p "$TEST_IMAGES" "$TEST_REFERENCES"
  for case in $TEST_CASES; do
    ln -s "$KITS_DIR/$case/imaging.nii.gz" "$TEST_IMAGES/$case.nii.gz"
    ln -s "$KITS_DIR/$case/$label_file" "$TEST_REFERENCES/$case.nii.gz"
  done
fi
echo "workflow_kits.sh: ${#all_cases[@]} cases in $KITS_DIR; held out for testing: $TEST_CASES"
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"

KIDNEY_ID=$FIRST_ID MASS_ID=$((FIRST_ID + 1)) ONE_STAGE_ID=$((FIRST_ID + 2)) FULLRES_ID=$((FIRST_ID + 3))
pretrained=()
[[ -z $PRETRAINED ]] || pretrained=(--pretrained "$PRETRAINED")
# planned ID PLANS [CONFIGURATION...]: a dataset is planned once its plans exist, with the preprocessed
# data of each configuration named (3d_fullres data is shared by all plans of a dataset, so only the
# others, i.e. 3d_lowres, have a folder of their own: PLANS_CONFIGURATION).
planned() {
  local id=$1 plans=$2 configuration
  local found=("$nnUNet_preprocessed/Dataset${id}"_*/"$plans.json")
  ((${#found[@]} > 0)) || return 1
  for configuration in "${@:3}"; do
    [[ $configuration == 3d_fullres || -d $(dirname "${found[0]}")/${plans}_$configuration ]] || return 1
  done
}
# trained ID TRAINER PLANS CONFIGURATION FOLD: a fold is done once it has its final checkpoint.
trained() {
  local final=("$nnUNet_results/Dataset${1}"_*/"${2}__${3}__${4}/fold_$5/checkpoint_final.pth")
  ((${#final[@]} > 0))
}
# Whether nnU-Net's planner made a configuration (it plans 3d_lowres only for images too large for 3d_fullres patches).
has_configuration() {
  python -c 'import json, sys; sys.exit(sys.argv[2] not in json.load(open(sys.argv[1]))["configurations"])' \
    "$nnUNet_preprocessed/Dataset${1}"_*/"$2.json" "$3"
}
# Every fold of a dataset's patient-grouped splits (the converter's splits_final.json): "0 1 2 3 4".
split_folds() {
  python -c 'import json, sys; print(*range(len(json.load(open(sys.argv[1])))))' "$nnUNet_raw/Dataset${1}"_*/splits_final.json
}

# The README's "Workflow on real data" block is the part between the two marker lines, with the
# resume checks ("... || run ") taken off each command; tests/test_workflow.py keeps them equal.
# >>> README workflow block
# 1. the training cases -> four nnU-Net raw datasets + lesion table + classifier crops
run renal-nnunet convert kits "$TRAIN_KITS" -o "$nnUNet_raw" --first-id "$FIRST_ID" --grid "$GRID" --workers "$WORKERS"

# 2. stock planning + the converter's patient-grouped splits, then stock nnUNetv2_train on every
#    fold (--c continues an interrupted fold) of the kidney, mass and one-stage grid U-Nets
run eval "$(renal-nnunet env)"      # export nnUNet_extTrainer=<package>/trainers/nnunet_ext
for id in "$KIDNEY_ID" "$MASS_ID" "$ONE_STAGE_ID"; do
  planned "$id" nnUNetPlans || run renal-nnunet plan -d "$id" -c 3d_fullres -np "$WORKERS"
  for fold in $FOLDS; do
    trained "$id" "$TRAINER" nnUNetPlans 3d_fullres "$fold" || run nnUNetv2_train "$id" 3d_fullres "$fold" -tr "$TRAINER" -device "$DEVICE" --c
  done
done

# 2b. the stock nnU-Net BASELINES (README "Baselines") on the native-resolution one-stage dataset:
#    each planned by its own planner (-pl) into its own plans (-p), every fold trained by stock
#    nnUNetv2_train; nnUNetPlans preprocess 3d_lowres too when 3d_lowres or the cascade is asked,
#    and a cascade trains every 3d_lowres fold first (their validation predictions are its input)
lowres=()
if [[ " ${baselines[*]} " == *" 3d_lowres "* || " ${baselines[*]} " == *" 3d_cascade_fullres "* ]]; then lowres=(3d_lowres); fi
baseline_models=()
for baseline in "${baselines[@]}"; do
  case $baseline in   # planner, its plans, the configurations trained in order, compare's name
    3d_fullres | 3d_lowres) planner=ExperimentPlanner plans=nnUNetPlans stages=("$baseline") name=nnunet_$baseline ;;
    3d_cascade_fullres) planner=ExperimentPlanner plans=nnUNetPlans stages=(3d_lowres 3d_cascade_fullres) name=nnunet_cascade ;;
    resenc_*) size=${baseline#resenc_} size=${size^^}   # M, L, XL
      planner=nnUNetPlannerResEnc$size plans=nnUNetResEncUNet${size}Plans stages=(3d_fullres) name=nnunet_$baseline ;;
  esac
  configurations=(3d_fullres)
  if [[ $plans == nnUNetPlans ]]; then configurations+=("${lowres[@]}"); fi
  planned "$FULLRES_ID" "$plans" "${configurations[@]}" || run renal-nnunet plan -d "$FULLRES_ID" -pl "$planner" -c "${configurations[@]}" -np "$WORKERS"
  if [[ ${stages[0]} == 3d_lowres ]] && ! has_configuration "$FULLRES_ID" "$plans" 3d_lowres; then
    echo "workflow_kits.sh: nnU-Net planned no 3d_lowres stage (the CTs fit 3d_fullres patches): $baseline left out" >&2
    continue
  fi
  for stage in "${stages[@]}"; do
    # the cascade trains on 3d_lowres predictions of each of its training cases: every fold's
    stage_folds=$FOLDS
    if [[ $baseline == 3d_cascade_fullres && $stage == 3d_lowres ]]; then stage_folds=$(split_folds "$FULLRES_ID"); fi
    for fold in $stage_folds; do
      trained "$FULLRES_ID" "$BASELINE_TRAINER" "$plans" "$stage" "$fold" || run nnUNetv2_train "$FULLRES_ID" "$stage" "$fold" -tr "$BASELINE_TRAINER" -p "$plans" -device "$DEVICE" --c
    done
  done
  baseline_models+=(--baseline "$name=$nnUNet_results/Dataset${FULLRES_ID}_RenalOneStage/${BASELINE_TRAINER}__${plans}__${stages[-1]}")
done

# 3. the classifier on the converter's lesion crops, one model per fold (grouped by patient); with
#    two or more folds, a temperature fitted on their out-of-fold predictions calibrates it
for fold in $FOLDS; do
  run renal-nnunet classifier train "$nnUNet_raw/RenalLesions" -o "$WORK_DIR/classifier" --fold "$fold" --epochs "$CLASSIFIER_EPOCHS" --device "$DEVICE" "${pretrained[@]}"
done
(($(wc -w <<< "$FOLDS") < 2)) || run renal-nnunet classifier calibrate "$nnUNet_raw/RenalLesions" -o "$WORK_DIR/classifier" --device "$DEVICE"

# 4. the trained-model folders -> one models folder (manifest.json; assembled afresh on every run)
rm -rf "$WORK_DIR/models"
kidney_model=$nnUNet_results/Dataset${KIDNEY_ID}_RenalKidney$GRID/${TRAINER}__nnUNetPlans__3d_fullres
mass_model=$nnUNet_results/Dataset${MASS_ID}_RenalMass$GRID/${TRAINER}__nnUNetPlans__3d_fullres
run renal-nnunet assemble-models --kidney "$kidney_model" --mass "$mass_model" --classifier "$WORK_DIR/classifier" -o "$WORK_DIR/models" --folds $FOLDS --training-data real

# 5. the cascade on the held-out CTs, scored against their KiTS references (the paper's kidney);
#    --min-diameter-mm 0: the paper's protocol classifies every mass, so both size strata are measured
run renal-nnunet predict -i "$TEST_IMAGES" -o "$WORK_DIR/predictions" -m "$WORK_DIR/models" --device "$DEVICE" --min-diameter-mm 0
run renal-nnunet evaluate --pred "$WORK_DIR/predictions" --ref "$TEST_REFERENCES" --ref-format kits -o "$WORK_DIR/evaluation"

# 6. the cascade vs the one-stage grid U-Net and the stock baselines on the same CTs and folds (a
#    cascade baseline's 3d_lowres stage is found beside its 3d_cascade_fullres folder)
one_stage_model=$nnUNet_results/Dataset${ONE_STAGE_ID}_RenalOneStage$GRID/${TRAINER}__nnUNetPlans__3d_fullres
run renal-nnunet compare -m "$WORK_DIR/models" --one-stage-model "$one_stage_model" "${baseline_models[@]}" -i "$TEST_IMAGES" -r "$TEST_REFERENCES" --ref-format kits -o "$WORK_DIR/comparison" -f $FOLDS --device "$DEVICE"
# <<< README workflow block
echo "workflow_kits.sh: done; tables in $WORK_DIR/evaluation and $WORK_DIR/comparison/comparison.csv"
