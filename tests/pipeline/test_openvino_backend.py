"""The OpenVINO backend against PyTorch on the tiny demo's trained models: same logits (1e-3), same
labels (>= 99.9 % of voxels), same lesion classes, same Grad-CAM (1e-4), and a changed checkpoint
is converted again instead of being served stale."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from renal_nnunet.anatomy.crops import lesion_crop
from renal_nnunet.anatomy.grid import prepare_grid_ct
from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.anatomy.lesions import lesion_components
from renal_nnunet.classification.data import crop_to_input
from renal_nnunet.classification.gradcam import grad_cam
from renal_nnunet.classification.ensemble import ClassifierEnsemble
from renal_nnunet.inference.ensemble import FoldEnsemble
from renal_nnunet.inference.grid_to_ct import predict_stage_labels
from renal_nnunet.io import read_image
from renal_nnunet.nnunet.layout import fold_checkpoint
from renal_nnunet.pipeline.models import load_models
from renal_nnunet.pipeline.predict import PredictConfig, predict
from renal_nnunet.runtime.backends import Runtime
from renal_nnunet.runtime.openvino import compiled_model_path

TORCH, OPENVINO = Runtime("torch", "cpu"), Runtime("openvino", "cpu")


@pytest.fixture(scope="module")
def held_out(tiny_demo):
    out_dir, _ = tiny_demo
    return sorted((out_dir / "test_images").glob("*.nii.gz"))


@pytest.fixture(scope="module")
def both_backends(tiny_demo, held_out, tmp_path_factory):
    """``predict`` on the held-out cases with each backend: (results, output folder) by backend."""
    out_dir, _ = tiny_demo
    work = tmp_path_factory.mktemp("backends")
    for case in held_out:
        shutil.copy(case, work / case.name)
    return {backend: (predict(work, work / f"out_{backend}", out_dir / "models", PredictConfig(backend=backend,
                                                                                             report=False)),
                      work / f"out_{backend}")
            for backend in ("torch", "openvino")}


def test_compiled_networks_give_the_torch_logits(tiny_demo, held_out):
    out_dir, _ = tiny_demo
    models = out_dir / "models"
    manifest = load_models(models)
    for stage in (manifest.kidney, manifest.mass):
        ensembles = {runtime.backend: FoldEnsemble(models / stage.path, stage.folds, runtime)
                     for runtime in (TORCH, OPENVINO)}
        predictor = ensembles["torch"].predictor
        compiled = ensembles["openvino"].predictor.fold_networks
        for path in held_out:
            grid_ct, _ = prepare_grid_ct(read_image(path), ensembles["torch"].grid)
            data, _ = ensembles["torch"]._preprocess(grid_ct)
            for parameters, network in zip(predictor.list_of_parameters, compiled):
                predictor.network.load_state_dict(parameters)
                with torch.no_grad():
                    expected = predictor.network.eval()(data[None]).numpy()
                assert np.abs(network(data[None]).numpy() - expected).max() < 1e-3
            ct = read_image(path)
            labels = {backend: sitk.GetArrayFromImage(predict_stage_labels(ct, ensemble))
                      for backend, ensemble in ensembles.items()}
            assert np.mean(labels["torch"] == labels["openvino"]) >= 0.999, (stage.path, path.name)


def test_predict_gives_the_same_lesions_and_grad_cams_on_both_backends(both_backends):
    results = {backend: {r.case_id: r for r in rows} for backend, (rows, _) in both_backends.items()}
    assert results["torch"].keys() == results["openvino"].keys()
    lesions = 0
    for case_id, torch_result in results["torch"].items():
        openvino_result = results["openvino"][case_id]
        assert torch_result.status == openvino_result.status == "ok"
        assert [x.lesion_class for x in torch_result.lesions] == [x.lesion_class for x in openvino_result.lesions]
        seg = {backend: sitk.GetArrayFromImage(read_image(results[backend][case_id].files["seg"]))
               for backend in results}
        assert np.mean(seg["torch"] == seg["openvino"]) >= 0.999
        for kind in (k for k in torch_result.files if k.startswith("cam_")):
            cams = [sitk.GetArrayFromImage(read_image(results[b][case_id].files[kind])) for b in results]
            assert np.abs(cams[0] - cams[1]).max() < 1e-4, (case_id, kind)
            lesions += 1
    assert lesions > 0, "no lesion was classified: the Grad-CAM comparison did not run"
    for backend, (_, out) in both_backends.items():
        assert json.loads((out / "predict_summary.json").read_text())["backend"] == backend


def test_the_compiled_classifier_s_grad_cam_equals_pytorch_grad_cam_for_every_class(tiny_demo, held_out):
    out_dir, _ = tiny_demo
    models = out_dir / "models"
    checkpoint = models / load_models(models).classifier[0]
    torch_fold, = ClassifierEnsemble([checkpoint], TORCH).load_folds()
    compiled, = ClassifierEnsemble([checkpoint], OPENVINO).load_folds()
    torch_model = torch_fold.model
    ct = read_image(held_out[0])
    reference = read_image(out_dir / "test_references" / held_out[0].name)
    components = lesion_components(reference >= OUTPUT_LABELS["AML"])  # the reference's largest mass
    crop, _ = lesion_crop(ct, components, torch_fold.grid, 1)
    volume = crop_to_input(crop)[None]
    with compiled.explained_forward(volume) as forward:
        with torch.no_grad():
            assert np.abs(forward.logits.numpy() - torch_model(volume).numpy()).max() < 1e-3
        maps = 0
        for target_class in range(forward.logits.shape[1]):
            expected = grad_cam(torch_model, volume, target_class)
            assert np.abs(forward.cam(target_class) - expected).max() < 1e-4
            maps += expected.max() > 0
    assert maps > 0, "every class map is empty: nothing was compared"


def test_a_changed_checkpoint_is_converted_again(tiny_demo, tmp_path):
    out_dir, _ = tiny_demo
    models = out_dir / "models"
    source = (models / load_models(models).kidney.path).resolve()
    model_dir = tmp_path / source.name
    shutil.copytree(source, model_dir, ignore=shutil.ignore_patterns("*.openvino-*"))
    checkpoint = fold_checkpoint(model_dir, 0)
    first = FoldEnsemble(model_dir, (0,), OPENVINO)
    cached = compiled_model_path(checkpoint)
    assert cached.is_file() and cached.with_suffix(".bin").is_file()

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    weights = saved["network_weights"]
    last_bias = [name for name in weights if name.endswith(".bias")][-1]
    weights[last_bias] = weights[last_bias] + 1.0  # the retrained fold: every logit moves by 1
    torch.save(saved, checkpoint)
    second = FoldEnsemble(model_dir, (0,), OPENVINO)
    assert compiled_model_path(checkpoint) != cached and compiled_model_path(checkpoint).is_file()
    assert not cached.exists(), "the stale conversion is left behind"
    patch = torch.randn(1, 1, *[first.grid] * 3)
    first_logits, second_logits = (ensemble.predictor.fold_networks[0](patch).numpy() for ensemble in (first, second))
    assert np.allclose(second_logits, first_logits + 1.0, atol=1e-3)
