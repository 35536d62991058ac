#!/usr/bin/env bash
# Create or reuse .venv, install, run the main job on the embedded synthetic default: one line per
# step with its time, then the tables; nnU-Net's own output goes to $DEMO_OUT/nnunet_output.log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PYTHONUTF8=1 nnUNet_def_n_proc=${nnUNet_def_n_proc:-1}
exec .venv/bin/renal-nnunet demo -o "${DEMO_OUT:-demo_output}" "$@"
