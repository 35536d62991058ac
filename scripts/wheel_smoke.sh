#!/usr/bin/env bash
# Build the sdist and the wheel as a user or an index would, install the wheel into a fresh venv and
# use it from outside the source tree: what the editable install of the tests cannot show (a file
# missing from the wheel, a packaging warning that becomes an error on a later setuptools).
#
#  1. `python -m build`: the sdist, then the wheel built from the unpacked sdist (so the sdist is
#     checked to build too), and the editable install scripts/install.sh makes. Any Python warning
#     or deprecation in their output fails.
#  2. Both archives against the source tree: every file under renal_nnunet/ in the wheel (the
#     nnUNet_extTrainer folder included), every source file in the sdist, LICENSE in the wheel's
#     metadata with License-Expression: Apache-2.0.
#  3. A fresh venv holding only the wheel; the dependencies come from .venv's site-packages through a
#     .pth line (a plain path: .venv's own .pth files, the editable renal_nnunet's among them, are
#     not processed), so only the build's setuptools and `build` come from the index. From a folder
#     outside the checkout: `renal-nnunet --help`; `eval "$(renal-nnunet env)"`, then stock
#     nnUNetv2_train (run by the smoke venv's interpreter) finds the paper trainer in the installed
#     wheel and trains the kidney U-Net for 5 iterations; `renal-nnunet train` (in-process lookup)
#     the mass U-Net; the classifier for one epoch; assemble-models; `renal-nnunet predict` on a
#     held-out synthetic CT (OpenVINO, the CPU default) writes its label map. Tiny 32^3 grids:
#     128-173 s on 2 cores shared with other jobs (load 3-8); 96-123 s of CPU time.
#
# Usage: bash scripts/wheel_smoke.sh   (creates/reuses .venv through scripts/install.sh)
#        RENAL_VENV=/path/to/venv bash scripts/wheel_smoke.sh   (dependencies from that venv; nothing
#        is installed into it)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
if [ -n "${RENAL_VENV:-}" ]; then
    VENV=$(cd "$RENAL_VENV" && pwd)
else
    bash scripts/install.sh
    VENV=$SRC/.venv
fi
PY=$VENV/bin/python
WORK=$(mktemp -d "${TMPDIR:-/tmp}/renal_wheel_smoke.XXXXXX")
LOG=$WORK/logs
mkdir -p "$LOG"
started=$SECONDS

# step NAME COMMAND...: run COMMAND with its output in $LOG/NAME.log; on failure show the log's tail.
step() {
    local name=$1 begun=$SECONDS
    shift
    if ! "$@" >"$LOG/$name.log" 2>&1; then
        tail -n 60 "$LOG/$name.log"
        echo "wheel smoke: FAILED at '$name' (logs in $LOG)" >&2
        exit 1
    fi
    echo "wheel smoke: $name ($((SECONDS - begun)) s)"
}

# --- 1. build: sdist, then the wheel from it, with build's isolated setuptools (pyproject.toml's)
step build-tool "$PY" -m pip install -q --target "$WORK/build-tool" build
step build env PYTHONPATH="$WORK/build-tool" "$PY" -m build --outdir "$WORK/dist" "$SRC"
# (build reports the backend's warnings as "WARNING ..."; pip's own notes, e.g. on its index
# configuration, also start with "WARNING:", so the editable install's log is matched more narrowly)
if grep -E "[A-Z][A-Za-z]*Warning|WARNING|[Dd]eprecat" "$LOG/build.log"; then
    echo "wheel smoke: FAILED: the build printed the warnings above (a deprecation becomes a build error later)" >&2
    exit 1
fi
# the development install (scripts/install.sh's `pip install -e`), into a throwaway venv: no warning either
step editable-venv "$PY" -m venv --without-pip "$WORK/editable"
step editable "$PY" -m pip --python "$WORK/editable/bin/python" install --no-deps -e "$SRC"
if grep -E "[A-Z][A-Za-z]*Warning|[Dd]eprecat" "$LOG/editable.log"; then
    echo "wheel smoke: FAILED: the editable install printed the warnings above" >&2
    exit 1
fi
WHEEL=$(ls "$WORK"/dist/renal_nnunet-*.whl)
SDIST=$(ls "$WORK"/dist/renal_nnunet-*.tar.gz)

# --- 2. contents against the source tree (git's file list where there is one)
step contents "$PY" - "$SRC" "$WHEEL" "$SDIST" <<'EOF'
import os, subprocess, sys, tarfile, zipfile
src, wheel, sdist = sys.argv[1:]
try:
    files = subprocess.run(["git", "-C", src, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
except (OSError, subprocess.CalledProcessError):
    files = [os.path.relpath(os.path.join(d, f), src) for d, dirs, fs in os.walk(src) for f in fs
             if "__pycache__" not in d and not d.startswith(os.path.join(src, "."))]
files = [f for f in files if os.path.isfile(os.path.join(src, f))]  # tracked and present
in_wheel = set(zipfile.ZipFile(wheel).namelist())
missing = [f for f in files if f.startswith("renal_nnunet/") and f not in in_wheel]
assert not missing, f"missing from the wheel: {missing}"
in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
shipped = ("renal_nnunet/", "tests/", "scripts/", "docs/", "README.md", "LICENSE", "pyproject.toml", "MANIFEST.in")
missing = [f for f in files if f.startswith(shipped) and f not in in_sdist]
assert not missing, f"missing from the sdist: {missing}"
dist_info = next(n.split("/")[0] for n in in_wheel if n.endswith(".dist-info/METADATA"))
assert f"{dist_info}/licenses/LICENSE" in in_wheel, "LICENSE not in the wheel's metadata"
metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
assert "License-Expression: Apache-2.0" in metadata.splitlines(), "no License-Expression: Apache-2.0"
print(f"wheel {len(in_wheel)} files, sdist {len(in_sdist)} files: complete")
EOF

# --- 3. a fresh venv holding the wheel alone; dependencies from $VENV (added after the install, so
#        pip sees no other renal_nnunet and touches nothing in $VENV)
SMOKE=$WORK/venv
step venv "$PY" -m venv --without-pip "$SMOKE"
step install "$PY" -m pip --python "$SMOKE/bin/python" install -q --no-deps --no-index "$WHEEL"
"$PY" -c 'import sysconfig; print("\n".join(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))))' \
    > "$("$SMOKE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/renal_smoke_dependencies.pth"

RUN=$WORK/run
mkdir -p "$RUN"
cd "$RUN"
unset PYTHONPATH nnUNet_extTrainer
export PATH="$SMOKE/bin:$PATH" PYTHONUTF8=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export nnUNet_raw=$RUN/nnUNet_raw nnUNet_preprocessed=$RUN/nnUNet_preprocessed nnUNet_results=$RUN/nnUNet_results
export nnUNet_n_proc_DA=0 nnUNet_def_n_proc=1 nnUNet_compile=false
SP=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

step import python -c "
import renal_nnunet, nnunetv2
assert renal_nnunet.__file__.startswith('$SP/'), renal_nnunet.__file__
print(renal_nnunet.__file__, nnunetv2.__file__)"
step help renal-nnunet --help
eval "$(renal-nnunet env)"
case "$nnUNet_extTrainer" in
    "$SP"/renal_nnunet/trainers/nnunet_ext) ;;
    *) echo "wheel smoke: FAILED: renal-nnunet env exported nnUNet_extTrainer=$nnUNet_extTrainer" >&2; exit 1 ;;
esac

step data python - <<'EOF'
from renal_nnunet.synthetic import write_synthetic_kits

tiny = dict(shape_zyx=(26, 27, 36), spacing_zyx_mm=(10.0, 10.0, 10.0))  # the tests' tiny demo cohort
write_synthetic_kits("kits", 5, seed=7, **tiny)
write_synthetic_kits("heldout", 1, seed=8, mass_free_every=None, **tiny)
EOF
step convert renal-nnunet convert kits kits -o "$nnUNet_raw" --first-id 801 --grid 32
step plan-kidney renal-nnunet plan -d 801 --no-verify
step plan-mass renal-nnunet plan -d 802 --no-verify
TRAINER=nnUNetTrainerRenalPaper_CPUsmoke
# stock nnUNetv2_train (the script pip wrote into $VENV), run by the smoke venv's interpreter
step stock-train python "$VENV/bin/nnUNetv2_train" 801 3d_fullres 0 -tr "$TRAINER" -device cpu
grep -q "Using trainer '$TRAINER' from: $nnUNet_extTrainer" "$LOG/stock-train.log" || {
    echo "wheel smoke: FAILED: nnUNetv2_train did not take $TRAINER from $nnUNet_extTrainer" >&2; exit 1; }
unset nnUNet_extTrainer  # the wrappers register the trainers themselves
step train renal-nnunet train 802 0 -tr "$TRAINER" --device cpu
step classifier renal-nnunet classifier train "$nnUNet_raw/RenalLesions" -o classifier --epochs 1 --device cpu
step assemble renal-nnunet assemble-models -o models -f 0 --training-data synthetic \
    --kidney "$nnUNet_results"/Dataset801_*/"$TRAINER"__nnUNetPlans__3d_fullres \
    --mass "$nnUNet_results"/Dataset802_*/"$TRAINER"__nnUNetPlans__3d_fullres --classifier classifier
mkdir ct && cp heldout/dataset/case_00000/imaging.nii.gz ct/heldout.nii.gz  # case id: the file name
# untrained-looking models find dozens of blobs: classify (with Grad-CAM) only those of 30 mm or more
step predict renal-nnunet predict -i ct/heldout.nii.gz -o predictions -m models --device cpu --no-report \
    --min-diameter-mm 30
[ -s predictions/heldout_seg.nii.gz ] || {
    echo "wheel smoke: FAILED: predict wrote no predictions/heldout_seg.nii.gz" >&2; exit 1; }
grep -m1 "^heldout: ok" "$LOG/predict.log" | cut -c1-200

cd "$SRC"
rm -rf "$WORK"
echo "wheel smoke: passed in $((SECONDS - started)) s ($(basename "$WHEEL"), $(basename "$SDIST"))"
