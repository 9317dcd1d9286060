"""The ONNX Runtime prior, model folders and ``flowrt score``, on a tiny exported flow."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import flowrt.prior.folders as models
from flowrt.errors import InputError, ModelError
from flowrt.export.pipeline import export_checkpoint
from flowrt.prior.folders import FORWARD_ONNX, MANIFEST_NAME, TORCH_WEIGHTS, load_torch_prior, resolve_model_dir
from flowrt.prior.onnx_backend import CPU, Prior, cuda_provider_loads, select_providers
from flowrt.prior.scoring import centre_crop_to_multiple, dequantize
from flowrt.train.checkpoint import FORMAT, atomic_save
from flowrt.train.config import ModelConfig, TrainConfig, to_dict
from flowrt.prior.flow import FlowModel


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A verified export of a 2-level flow (sides divisible by 4) with perturbed weights."""
    cfg = TrainConfig(model=ModelConfig(levels=2, steps_per_level=1, width=8, seed=3))
    model = FlowModel(cfg.model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.initialize(torch.rand(4, 3, 12, 16, generator=gen))
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    root = tmp_path_factory.mktemp("prior")
    atomic_save({"format": FORMAT, "config": to_dict(cfg), "model": model.state_dict()}, root / "tiny.pt")
    return export_checkpoint(root / "tiny.pt", root / "prior")[0]


@pytest.fixture(scope="module")
def prior(folder) -> Prior:
    return Prior(folder, device="cpu", threads=1)


@pytest.fixture(scope="module")
def torch_prior(folder):
    return load_torch_prior(folder)


def images(batch: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 0.9, (batch, 3, h, w)).astype(np.float32)


def test_encode_decode_round_trip_with_opposite_logdets(prior):
    x = images(3, 12, 20)  # odd batch, non-square
    u, logdet = prior.encode(x)
    assert u.shape == x.shape and u.dtype == np.float32 and logdet.shape == (3,)
    back, inv_logdet = prior.decode(u)
    np.testing.assert_allclose(back, x, atol=1e-5)
    np.testing.assert_allclose(logdet, -inv_logdet, rtol=1e-5, atol=1e-3)


def test_density_matches_the_torch_model_it_was_exported_from(prior, torch_prior):
    x = images(2, 16, 8, seed=1)
    with torch.no_grad():
        expected_lp = torch_prior.log_prob(torch.from_numpy(x)).double().numpy()
        expected_bpd = torch_prior.bits_per_dim(torch.from_numpy(x)).double().numpy()
        expected_u = torch_prior(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(prior.log_prob(x), expected_lp, rtol=1e-5)
    np.testing.assert_allclose(prior.bits_per_dim(x), expected_bpd, atol=1e-5)
    np.testing.assert_allclose(prior.encode(x)[0], expected_u, atol=1e-5)
    assert prior.log_prob(x).dtype == np.float64


def test_prior_reports_what_runs_it(prior):
    assert prior.providers[0] == CPU and prior.device == "cpu"
    assert prior.multiple == 4 and prior.levels == 2 and prior.precision == "float32"


def test_providers_are_only_those_that_load():
    assert select_providers("cpu") == [CPU]
    assert select_providers("auto")[-1] == CPU
    if not cuda_provider_loads():
        assert select_providers("auto") == [CPU]
        with pytest.raises(InputError, match="CUDA provider cannot load"):
            select_providers("cuda")
    with pytest.raises(InputError):
        select_providers("tpu")


@pytest.mark.cuda
def test_cuda_provider_runs_the_graphs_when_present(folder):
    if not cuda_provider_loads():
        pytest.skip("onnxruntime's CUDA provider cannot load here")
    gpu = Prior(folder, device="cuda")
    assert gpu.device == "cuda"
    x = images(1, 16, 16)
    np.testing.assert_allclose(gpu.log_prob(x), Prior(folder, device="cpu").log_prob(x), rtol=1e-4)


@pytest.mark.parametrize("bad, message", [
    (images(1, 10, 12), "divisible by 4"),
    (images(1, 12, 12)[:, :2], r"shape \(B, 3, H, W\)"),
    (images(1, 12, 12)[0], r"shape \(B, 3, H, W\)"),
    (np.zeros((1, 3, 12, 12), np.uint8), "floating point"),
    ([[0.5]], "numpy array"),
])
def test_bad_inputs_are_input_errors(prior, bad, message):
    with pytest.raises(InputError, match=message):
        prior.encode(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input_is_refused_in_both_directions(prior, value):
    x = images(1, 8, 8)
    x[0, 1, 2, 3] = value
    with pytest.raises(InputError, match="NaN or infinite"):
        prior.log_prob(x)
    with pytest.raises(InputError, match="NaN or infinite"):
        prior.decode(x)


def test_tampered_graph_or_weights_are_refused(folder, tmp_path):
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    with open(copy / FORWARD_ONNX, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        Prior(copy)
    (copy / TORCH_WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(ModelError, match="sha256"):
        load_torch_prior(copy)


def test_missing_file_and_missing_manifest_are_model_errors(folder, tmp_path):
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    (copy / FORWARD_ONNX).unlink()
    with pytest.raises(ModelError, match="missing"):
        Prior(copy)
    (copy / MANIFEST_NAME).unlink()
    with pytest.raises(ModelError, match="no manifest.yaml"):
        Prior(copy)
    with pytest.raises(ModelError, match="not found"):
        Prior(tmp_path / "nowhere")


@pytest.mark.parametrize("edit", [
    lambda m: m.update(format="something-else"),
    lambda m: m.pop("files"),
    lambda m: m.update(files=["forward.onnx"]),
    lambda m: m["size_rule"].update(multiple=8),
    lambda m: m["verification"].update(passed=False),
])
def test_malformed_manifest_is_a_model_error(folder, tmp_path, edit):
    import yaml

    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    manifest = yaml.safe_load((copy / MANIFEST_NAME).read_text())
    edit(manifest)
    (copy / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError):
        Prior(copy)
    (copy / MANIFEST_NAME).write_text("{unclosed: [")
    with pytest.raises(ModelError, match="not valid YAML"):
        Prior(copy)


def test_torch_prior_is_frozen_for_map(torch_prior):
    assert not torch_prior.training
    assert not any(p.requires_grad for p in torch_prior.parameters())
    x = torch.from_numpy(images(1, 8, 8)).requires_grad_(True)
    torch_prior.log_prob(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_resolve_model_dir(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "PACKAGED_MODELS", tmp_path)
    with pytest.raises(ModelError, match="default prior is not installed.*flowrt export"):
        resolve_model_dir(None)
    shutil.copytree(folder, tmp_path / "default")
    assert resolve_model_dir(None) == tmp_path / "default"
    assert resolve_model_dir("default") == tmp_path / "default"
    assert resolve_model_dir(str(folder)) == folder
    with pytest.raises(ModelError, match="is a file"):
        resolve_model_dir(str(folder / MANIFEST_NAME))


def test_centre_crop_and_dequantisation():
    rgb = np.arange(7 * 9 * 3, dtype=np.uint8).reshape(7, 9, 3)
    crop = centre_crop_to_multiple(rgb, 4)
    assert crop.shape == (4, 8, 3) and crop[0, 0, 0] == rgb[1, 0, 0]
    mid = dequantize(crop, "mid")
    assert mid.shape == (1, 3, 4, 8) and np.allclose(mid * 256 - 0.5, crop.transpose(2, 0, 1)[None], atol=1e-4)
    noisy = dequantize(crop, "uniform", seed=5)
    assert np.array_equal(noisy, dequantize(crop, "uniform", seed=5))
    assert np.all(np.floor(noisy * 256 + 1e-6) == crop.transpose(2, 0, 1)[None])
    with pytest.raises(InputError, match="at least 4x4"):
        centre_crop_to_multiple(rgb[:3], 4)


# ---------------------------------------------------------------- flowrt score


def test_cli_score_crops_and_agrees_with_torch(invoke_flowrt, make_images, folder, torch_prior, tmp_path):
    from flowrt.prior.scoring import read_rgb8

    path = make_images(tmp_path, [(37, 41, ".png")])[0]
    result = invoke_flowrt("score", path, "--model", folder)
    assert result.exit_code == 0, result.output
    assert "centre-cropped 41x37 to 40x36" in result.output and "uniform dequantisation" in result.output
    bpd = float(result.output.split()[0])
    x = dequantize(centre_crop_to_multiple(read_rgb8(str(path))[0], 4), "uniform", 0)
    with torch.no_grad():
        expected = float(torch_prior.bits_per_dim(torch.from_numpy(x)))
    assert abs(bpd - expected) < 1e-3
    mid = invoke_flowrt("score", path, "--model", folder, "--dequant", "mid")
    assert mid.exit_code == 0 and "mid dequantisation" in mid.output
    assert math.isfinite(float(mid.output.split()[0]))


def test_cli_score_errors_are_one_line(invoke_flowrt, make_images, folder, tmp_path, monkeypatch):
    good = make_images(tmp_path, [(16, 16, ".png")])[0]
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    tiny = make_images(tmp_path / "tiny", [(3, 3, ".png")])[0]
    monkeypatch.setattr(models, "PACKAGED_MODELS", tmp_path / "no-models")
    for args, message in (((tmp_path / "none.png", "--model", folder), "none.png"),
                          ((not_image, "--model", folder), "notes.txt"),
                          ((tiny, "--model", folder), "at least 4x4"),
                          ((good, "--model", tmp_path / "nowhere"), "model folder not found"),
                          ((good,), "default prior is not installed")):
        result = invoke_flowrt("score", *args)
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit), args
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


@pytest.fixture(scope="module")
def ort_gradient(tiny_grad_prior):
    from flowrt.prior.ort_gradient import OrtPriorGradient

    return OrtPriorGradient(tiny_grad_prior, device="cpu", threads=1)


def test_ort_nll_and_grad_match_torch_autograd(ort_gradient, tiny_grad_prior):
    model = load_torch_prior(tiny_grad_prior)
    x = images(2, 12, 20, seed=4)
    nll, grad = ort_gradient.nll_and_grad(x)
    assert nll.shape == (2,) and nll.dtype == np.float64 and grad.shape == x.shape and grad.dtype == np.float32
    xt = torch.from_numpy(x).requires_grad_(True)
    expected = -model.log_prob(xt)
    expected.sum().backward()
    np.testing.assert_allclose(nll, expected.detach().numpy(), rtol=1e-5)
    assert np.abs(grad - xt.grad.numpy()).max() <= 1e-5 * np.abs(xt.grad.numpy()).max()
    assert ort_gradient.multiple == 4 and ort_gradient.device == "cpu"
    with pytest.raises(InputError, match="divisible by 4"):
        ort_gradient.nll_and_grad(images(1, 10, 12))


def test_torch_adapter_runs_the_solver_like_the_torch_prior(ort_gradient, tiny_grad_prior):
    """map_restore(OrtTorchPrior, ...) in image space: the torch solver unchanged, the prior on ORT."""
    from flowrt.operators import build_forward_model
    from flowrt.prior.ort_gradient import OrtTorchPrior
    from flowrt.solve.solver import SolverConfig, map_restore

    adapter = OrtTorchPrior(ort_gradient)
    x = torch.from_numpy(images(1, 8, 12, seed=6)).requires_grad_(True)
    log_p = adapter.log_prob(x)
    log_p.sum().backward()
    assert log_p.shape == (1,) and x.grad.shape == x.shape
    noisy = np.clip(images(1, 19, 23, seed=7)[0].transpose(1, 2, 0), 0, 1)
    results = [map_restore(prior, build_forward_model(noisy, sigma=15.0), SolverConfig(iters=5))
               for prior in (adapter, load_torch_prior(tiny_grad_prior))]
    ort_result, torch_result = results
    assert ort_result.x.shape == (1, 3, 19, 23) and not ort_result.fell_back
    assert float((ort_result.x - torch_result.x).abs().max()) < 1e-4
    np.testing.assert_allclose(ort_result.objective, torch_result.objective, rtol=1e-5)


def test_a_prior_without_gradient_graphs_is_a_clear_model_error(folder):
    from flowrt.prior.ort_gradient import OrtPriorGradient

    with pytest.raises(ModelError, match="without gradient graphs"):
        OrtPriorGradient(folder, device="cpu")
