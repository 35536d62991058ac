"""One CLI vocabulary: the shared flags mean the same in every ``renal-nnunet`` subcommand."""

from __future__ import annotations

import argparse
import sys

import pytest

from renal_nnunet.cli import build_parser
from renal_nnunet.cli_options import DEVICES, PAPER_FOLDS, default_device, resolve_device
from renal_nnunet.settings import PAPER

# flag -> (its spellings, dest): the same in every subcommand that has the flag.
SHARED_FLAGS = {
    "-i": ({"-i", "--input"}, "input"),
    "-o": ({"-o", "--output"}, "output"),
    "-m": ({"-m", "--models"}, "models"),
    "-f": ({"-f", "--folds"}, "folds"),
    "-d": ({"-d", "--dataset"}, "dataset"),
    "--device": ({"--device", "-device"}, "device"),
}


def _subcommands(parser: argparse.ArgumentParser, name: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf subcommand parser by its command line (``convert kits``, ``predict``, ...)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found.update(_subcommands(sub, f"{name} {sub_name}".strip()))
    return found or {name: parser}


SUBCOMMANDS = _subcommands(build_parser())


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_the_parser_has_every_stage():
    assert {"convert kits", "convert manifest", "env", "plan", "train", "predict-dataset", "predict-stage", "map-back",
            "classifier train", "classifier predict", "evaluate", "predict", "assemble-models", "export-models",
            "import-models", "compile-models", "demo", "compare", "nephrometry"} <= set(SUBCOMMANDS)


def test_the_commands_that_predict_choose_the_backend_the_same_way():
    with_backend = {c for c in SUBCOMMANDS if "--backend" in _options(SUBCOMMANDS[c])}
    assert with_backend == {"predict", "predict-stage", "compare", "classifier predict"}
    for command in with_backend:
        action = _options(SUBCOMMANDS[command])["--backend"]
        assert action.default == "auto" and tuple(action.choices) == ("auto", "torch", "openvino")


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_shared_flags_have_one_spelling_and_dest(command):
    options = _options(SUBCOMMANDS[command])
    for flag, (spellings, dest) in SHARED_FLAGS.items():
        for spelling in spellings:
            action = options.get(spelling)
            if action is None:
                continue
            assert set(action.option_strings) == spellings, f"{command}: {spelling} is spelled {action.option_strings}"
            assert action.dest == dest, f"{command}: {spelling} sets {action.dest}, not {dest}"
    assert "--out" not in options, f"{command}: output is -o/--output"


@pytest.mark.parametrize("command", sorted(c for c in SUBCOMMANDS if "--device" in _options(SUBCOMMANDS[c])))
def test_every_device_flag_has_the_one_default_rule(command):
    action = _options(SUBCOMMANDS[command])["--device"]
    assert action.default is None and tuple(action.choices) == DEVICES
    assert "default: cuda if available, else cpu" in action.help


@pytest.mark.parametrize("command", sorted(c for c in SUBCOMMANDS if "-f" in _options(SUBCOMMANDS[c])))
def test_folds_are_a_list_defaulting_to_the_paper_or_to_the_models_folder(command):
    action = _options(SUBCOMMANDS[command])["-f"]
    assert action.nargs == "+" and action.default in (PAPER_FOLDS, None)
    assert PAPER_FOLDS == ["0", "1", "2", "3", "4"]


def test_commands_that_take_a_device_are_the_ones_that_run_networks():
    with_device = {c for c in SUBCOMMANDS if "--device" in _options(SUBCOMMANDS[c])}
    assert with_device == {"train", "predict-dataset", "predict-stage", "classifier train", "classifier calibrate",
                           "classifier predict", "predict", "demo", "compare"}


def test_default_device_is_cuda_when_available_else_cpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu" and resolve_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda" and resolve_device(None) == "cuda"
    assert resolve_device("mps") == "mps"


def test_paper_values_are_the_cli_defaults():
    defaults = {c: argparse.Namespace(**{a.dest: a.default for a in p._actions}) for c, p in SUBCOMMANDS.items()}
    assert defaults["convert kits"].grid == PAPER.grid and defaults["convert kits"].margin_mm == PAPER.kidney_margin_mm
    assert defaults["predict-stage"].margin_mm == PAPER.kidney_margin_mm
    assert defaults["assemble-models"].margin_mm == PAPER.kidney_margin_mm
    assert defaults["classifier train"].epochs == PAPER.epochs
    assert defaults["classifier train"].batch_size == PAPER.batch_size
    assert defaults["classifier train"].lr == PAPER.learning_rate
    assert defaults["evaluate"].size_threshold_mm == PAPER.size_threshold_mm


def test_the_parser_does_not_import_torch():
    """``--help`` stays fast: the flags and the device rule import torch only when a handler runs."""
    import subprocess

    code = "import sys; from renal_nnunet.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_nnunet_folds_keep_all_as_nnunets_fold_all():
    from renal_nnunet.cli_options import nnunet_folds

    assert nnunet_folds(["0", "3"]) == (0, 3) and nnunet_folds(["all"]) == ("all",)


def test_compile_models_help_states_the_quantisation_defaults_it_runs_with():
    """The parser keeps torch out of ``renal-nnunet --help`` and so writes the counts as text:
    they must be ``QuantizationConfig``'s own."""
    from renal_nnunet.pipeline.quantization import QuantizationConfig

    options, defaults = _options(SUBCOMMANDS["compile-models"]), QuantizationConfig()
    assert f"(default {defaults.calibration_cases})" in options["--calibration-cases"].help
    assert f"(default {defaults.validation_cases})" in options["--held-out-cases"].help
    assert f"(default {defaults.accuracy_control_cases}; 0: off)" in options["--accuracy-control-cases"].help
    assert f"(default {defaults.accuracy_control_share:g};" in options["--accuracy-control-share"].help
