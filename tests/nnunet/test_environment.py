"""nnU-Net's environment in one module: folders, worker counts, the trainer lookup's variable, and
where nnU-Net's console output goes."""

from __future__ import annotations

import io
import logging
import os
import warnings

import pytest

from renal_nnunet.nnunet.environment import (
    FOLDER_VARIABLES,
    NnunetFolders,
    dataset_folder,
    environment_variables,
    nnunet_environment,
    nnunet_output_to,
    required_folder,
    training_augmentation_processes,
    training_environment,
)


def test_nnunet_environment_sets_folders_and_workers_and_restores_them(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", "/somewhere/else")
    monkeypatch.delenv("nnUNet_results", raising=False)
    monkeypatch.setenv("nnUNet_def_n_proc", "7")
    folders = NnunetFolders.under(tmp_path / "nnunet")
    with nnunet_environment(folders, augmentation_processes=0) as inside:
        assert inside == folders
        assert [os.environ[name] for name in FOLDER_VARIABLES] == [
            str(tmp_path / "nnunet" / name) for name in FOLDER_VARIABLES]
        assert all(folder.is_dir() for folder in (folders.raw, folders.preprocessed, folders.results))
        assert os.environ["nnUNet_n_proc_DA"] == "0" and os.environ["nnUNet_def_n_proc"] == "1"
        assert NnunetFolders.from_environment() == folders
    assert os.environ["nnUNet_raw"] == "/somewhere/else"
    assert "nnUNet_results" not in os.environ
    assert os.environ["nnUNet_def_n_proc"] == "7"


def test_environment_variables_unsets_and_restores_even_on_error(monkeypatch):
    monkeypatch.setenv("RENAL_TEST_A", "a")
    monkeypatch.delenv("RENAL_TEST_B", raising=False)
    with pytest.raises(RuntimeError):
        with environment_variables({"RENAL_TEST_A": None, "RENAL_TEST_B": "b"}):
            assert "RENAL_TEST_A" not in os.environ and os.environ["RENAL_TEST_B"] == "b"
            raise RuntimeError
    assert os.environ["RENAL_TEST_A"] == "a" and "RENAL_TEST_B" not in os.environ


def test_training_respects_the_users_augmentation_workers(monkeypatch):
    """A user's nnUNet_n_proc_DA decides on every device; unset, the CPU augments in the training
    process and a GPU gets nnU-Net's own default (None: the variable is left unset)."""
    monkeypatch.setenv("nnUNet_n_proc_DA", "3")
    assert training_augmentation_processes("cpu") == 3
    assert training_augmentation_processes("cuda") == 3
    monkeypatch.delenv("nnUNet_n_proc_DA")
    assert training_augmentation_processes("cpu") == 0
    assert training_augmentation_processes("cuda") is None
    monkeypatch.setenv("nnUNet_n_proc_DA", "many")
    with pytest.raises(ValueError, match="nnUNet_n_proc_DA='many'"):
        training_augmentation_processes("cuda")


def test_training_environment_keeps_the_folders_and_the_users_workers(tmp_path, monkeypatch):
    folders = NnunetFolders.under(tmp_path)
    for name, folder in zip(FOLDER_VARIABLES, (folders.raw, folders.preprocessed, folders.results)):
        monkeypatch.setenv(name, str(folder))
    monkeypatch.setenv("nnUNet_n_proc_DA", "2")
    with training_environment("cuda") as inside:
        assert inside == folders and os.environ["nnUNet_n_proc_DA"] == "2"
    monkeypatch.delenv("nnUNet_n_proc_DA")
    with training_environment("cpu"):
        assert os.environ["nnUNet_n_proc_DA"] == "0"
    with training_environment("cuda"):
        # nnU-Net's get_allowed_n_proc_DA picks its per-machine default
        assert "nnUNet_n_proc_DA" not in os.environ
    assert "nnUNet_n_proc_DA" not in os.environ


def test_nnunet_environment_leaves_the_users_workers_alone_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "6")
    with nnunet_environment(NnunetFolders.under(tmp_path)):
        assert os.environ["nnUNet_n_proc_DA"] == "6"


def test_unset_folder_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    with pytest.raises(ValueError, match="nnUNet_preprocessed is not set"):
        required_folder("nnUNet_preprocessed")
    with pytest.raises(ValueError, match="nnUNet_preprocessed is not set"):
        dataset_folder(501, "nnUNet_preprocessed")
    with pytest.raises(ValueError, match="is not set"):
        NnunetFolders.from_environment()


def test_dataset_folder_finds_a_dataset_by_id_or_name(tmp_path, monkeypatch):
    (tmp_path / "Dataset123_Thing").mkdir()
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert dataset_folder(123) == tmp_path / "Dataset123_Thing"
    assert dataset_folder("Dataset123_Thing") == tmp_path / "Dataset123_Thing"
    with pytest.raises(ValueError):
        dataset_folder(124)


def test_trainer_lookup_goes_through_the_environment_and_restores(monkeypatch):
    from renal_nnunet.trainers.registration import EXT_TRAINER_DIR, trainer_lookup

    monkeypatch.setenv("nnUNet_extTrainer", "/my/trainers")
    with trainer_lookup() as search_path:
        assert os.environ["nnUNet_extTrainer"] == search_path == os.pathsep.join(["/my/trainers", str(EXT_TRAINER_DIR)])
    assert os.environ["nnUNet_extTrainer"] == "/my/trainers"


def test_nnunet_output_goes_to_the_log_file_and_the_console_keeps_its_own_lines(tmp_path, capsys):
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    log_path = tmp_path / "out" / "nnunet_output.log"
    try:
        with nnunet_output_to(log_path, console_loggers=("renal_nnunet.pipeline.demo",)) as path:
            assert path == log_path
            print("Trainer 'X' not found in nnunetv2.training.nnUNetTrainer.")
            warnings.warn("perform_everything_on_device=True is only supported for cuda devices!")
            logging.getLogger().info("copying case_00000.nii.gz")  # nnU-Net logs through the root logger
            logging.getLogger("renal_nnunet.synthetic").info("wrote 5 synthetic cases")
            logging.getLogger("renal_nnunet.pipeline.demo").info("demo step data: 2 s")
            logging.getLogger("renal_nnunet.pipeline.demo").warning("conversion failures")
            logging.getLogger("nnunetv2").warning("a real problem")
        print("after the block")
        logging.getLogger("renal_nnunet.synthetic").info("after, on the console")
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    shown = console.getvalue().splitlines()
    assert shown == ["demo step data: 2 s", "conversion failures", "a real problem", "after, on the console"]
    assert capsys.readouterr().out == "after the block\n"
    written = log_path.read_text()
    for line in ("Trainer 'X' not found", "perform_everything_on_device", "copying case_00000",
                 "wrote 5 synthetic cases", "demo step data: 2 s", "a real problem"):
        assert line in written
    assert "after" not in written
