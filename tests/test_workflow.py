"""The README's real-data workflow: ``scripts/workflow_kits.sh`` and the README block that shows it
stay equal, its settings agree in the script, its help and the README, and bad arguments stop it
before anything is written."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.conftest import BIN, REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "workflow_kits.sh"
README = REPO_ROOT / "README.md"
BLOCK_START, BLOCK_END = "# >>> README workflow block", "# <<< README workflow block"
README_MARK = "<!-- generated from scripts/workflow_kits.sh"

COMMAND_ORDER = ("renal-nnunet convert kits", "renal-nnunet plan", "nnUNetv2_train", "renal-nnunet classifier train",
                 "renal-nnunet assemble-models", "renal-nnunet predict", "renal-nnunet evaluate",
                 "renal-nnunet compare")


def readme_block_from_script(script: str) -> str:
    """The README's workflow block as the script defines it: the lines between the script's markers
    with each command's resume check (``... || run ``) or ``run `` prefix taken off."""
    lines = script.splitlines()
    section = lines[lines.index(BLOCK_START) + 1:lines.index(BLOCK_END)]
    return "\n".join(re.sub(r"^(\s*)(?:\S.* \|\| )?run ", r"\1", line) for line in section)


def readme_workflow_block(readme: str) -> str:
    """The bash block that follows the README's generated-from-the-script marker."""
    after_mark = readme.split(README_MARK, 1)[1]
    return re.search(r"```bash\n(.*?)\n```", after_mark, re.S).group(1)


def test_readme_block_is_the_scripts_commands():
    script = SCRIPT.read_text()
    expected = readme_block_from_script(script)
    assert readme_workflow_block(README.read_text()) == expected, (
        "README's 'Workflow on real data' block differs from scripts/workflow_kits.sh; paste this block:\n" + expected)
    commands = [line.strip() for line in expected.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    positions = [next(i for i, line in enumerate(commands) if line.startswith(c)) for c in COMMAND_ORDER]
    assert positions == sorted(positions), "the block runs convert -> plan -> train -> ... -> compare in order"
    assert "--ref-format kits" in next(line for line in commands if line.startswith("renal-nnunet evaluate"))
    assert not any(re.match(r"(\S.* \|\| )?run ", line) for line in commands), "every command is shown bare"


def test_settings_and_their_defaults_agree_in_script_help_and_readme():
    script = SCRIPT.read_text()
    defaults = dict(re.findall(r"\$\{(\w+):=([^}]*)\}", script))
    help_defaults = {name: value.strip('"') for name, value in re.findall(r"^#   ([A-Z_]+)=(\"[^\"]*\"|\S*)", script, re.M)}
    readme_rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (?:`([^`]*)`|\(none[^)]*\)) \|", README.read_text(), re.M))
    assert help_defaults == defaults
    assert readme_rows == defaults


def _run_script(env: dict[str, str], *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess:
    # nnU-Net's variables are the script's to set (its defaults put every folder under WORK_DIR).
    ignored = ("nnUNet_extTrainer", "nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    environment = {**{k: v for k, v in os.environ.items() if k not in ignored},
                   "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env=environment, capture_output=True,
                          encoding="utf-8", errors="replace", timeout=timeout)


def test_script_names_a_missing_test_case_before_doing_anything(kits23_dataset, tmp_path):
    done = _run_script({"TEST_CASES": "case_00061 case_99999"}, kits23_dataset, tmp_path / "work")
    assert done.returncode == 1
    assert f"TEST_CASES: {kits23_dataset}/case_99999 does not exist" in done.stderr
    assert not (tmp_path / "work" / "kits_train").exists() and not (tmp_path / "work" / "nnUNet_raw").exists()


def test_script_without_arguments_prints_usage():
    done = _run_script({})
    assert done.returncode == 2 and "Usage: scripts/workflow_kits.sh KITS_DIR WORK_DIR" in done.stderr

