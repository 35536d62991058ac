#!/usr/bin/env bash
# Create or reuse .venv, install, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PYTHONUTF8=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} nnUNet_def_n_proc=${nnUNet_def_n_proc:-1}
exec .venv/bin/python -m pytest "$@"
