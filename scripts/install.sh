#!/usr/bin/env bash
# Create or reuse .venv and install renal_nnunet with its dependencies.
# torch/torchvision are pinned and installed first: on these machines both lie on local disk, and
# an unpinned torch pulls a multi-GB download (see README, "Installation").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.renal_nnunet_installed
want=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
