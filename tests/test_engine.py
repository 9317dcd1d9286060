"""--engine: the MAP's prior gradient from torch autograd or from the exported ONNX Runtime graph."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowrt.cli.main import cli


def _noisy(path, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:48]
    clean = np.stack([(xx * 5) % 256, (yy * 7) % 256, (xx + yy) * 2 % 256], -1).astype(np.float64)
    Image.fromarray(np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)).save(path)
    return path


def _restore(src, out, folder, *extra):
    return CliRunner().invoke(cli, ["restore", str(src), "-o", str(out), "--model", str(folder),
                                    "--iters", "4", "--sigma", "20", *extra])


def test_ort_engine_restores_like_torch(tiny_grad_prior, tmp_path):
    src = _noisy(tmp_path / "in.png")
    by_torch, by_ort = tmp_path / "torch.png", tmp_path / "ort.png"
    for out, engine in ((by_torch, "torch"), (by_ort, "ort")):
        result = _restore(src, out, tiny_grad_prior, "--engine", engine)
        assert result.exit_code == 0, result.output
    a = np.asarray(Image.open(by_torch), np.int16)
    b = np.asarray(Image.open(by_ort), np.int16)
    assert a.shape == b.shape == (32, 48, 3)
    assert np.abs(a - b).max() <= 1  # the same MAP, float32 rounding apart


def test_ort_engine_refuses_latent_space_in_one_line(tiny_grad_prior, tmp_path):
    result = _restore(_noisy(tmp_path / "in.png"), tmp_path / "out.png", tiny_grad_prior,
                      "--engine", "ort", "--space", "latent")
    assert result.exit_code != 0 and "latent space needs --engine torch" in result.output
    assert not (tmp_path / "out.png").exists()


def test_ort_engine_without_gradient_graphs_is_one_clear_error(tiny_prior, tmp_path):
    result = _restore(_noisy(tmp_path / "in.png"), tmp_path / "out.png", tiny_prior, "--engine", "ort")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "prior_grad.onnx" in result.output and not (tmp_path / "out.png").exists()


def test_the_ort_engine_is_the_bare_gradient_under_the_numpy_loop(tiny_grad_prior, map_runs):
    """open_engine('ort') gives the OrtPriorGradient itself (no torch module around it), and a restore
    with it runs the numpy MAP loop."""
    import flowrt
    from flowrt.prior.engines import engine_of, open_engine
    from flowrt.prior.ort_gradient import OrtPriorGradient

    device, prior = open_engine(tiny_grad_prior, "ort", "cpu")
    assert type(prior) is OrtPriorGradient and device == "cpu" and engine_of(prior) == "ort"
    assert engine_of(open_engine(tiny_grad_prior, "torch", "cpu")[1]) == "torch"
    rng = np.random.default_rng(1)
    noisy = np.clip(0.5 + 0.08 * rng.standard_normal((21, 30, 3)), 0, 1).astype(np.float32)
    result = flowrt.restore(noisy, prior=prior, sigma=20, iters=3)
    assert result.image.shape == noisy.shape and result.image.dtype == np.float32 and map_runs == [1]


def test_an_ort_prior_refuses_the_latent_space_in_the_api(tiny_grad_prior):
    import flowrt
    from flowrt.errors import InputError

    prior = flowrt.load_prior(tiny_grad_prior, engine="ort", device="cpu")
    with pytest.raises(InputError, match="latent space needs a torch prior"):
        flowrt.restore(np.full((16, 16, 3), 0.5, np.float32), prior=prior, sigma=10, space="latent", iters=2)


def test_auto_picks_ort_on_the_cpu_in_image_space_with_a_gradient_graph(tiny_prior, tiny_grad_prior, monkeypatch):
    """Why ort on the CPU: it was faster than torch there (benchmarks/results/restore_speed.md)."""
    import flowrt.device
    from flowrt.prior.engines import choose_engine

    assert choose_engine("auto", "cpu", "image", tiny_grad_prior) == "ort"
    assert choose_engine("auto", "cpu", "image", None) == "ort"                 # the packaged prior ships it
    assert choose_engine("auto", "cpu", "image", tiny_prior) == "torch"         # exported without gradients
    assert choose_engine("auto", "cpu", "latent", tiny_grad_prior) == "torch"
    assert choose_engine("auto", "cuda:1", "image", tiny_grad_prior) == "torch"
    assert choose_engine("auto", "cpu", "image", "/no/such/folder") == "torch"  # the torch loader says why
    assert choose_engine("torch", "cpu", "image", tiny_grad_prior) == "torch"
    monkeypatch.setattr(flowrt.device, "gpu_driver_loaded", lambda: False)
    assert choose_engine("auto", "auto", "image", tiny_grad_prior) == "ort"     # no torch import needed
    monkeypatch.setattr(flowrt.device, "gpu_driver_loaded", lambda: True)
    monkeypatch.setattr(flowrt.device, "resolve_device", lambda name: __import__("torch").device("cuda"))
    assert choose_engine("auto", "auto", "image", tiny_grad_prior) == "torch"


def test_verbose_names_the_engine(tiny_grad_prior, tmp_path):
    src = _noisy(tmp_path / "in.png")
    result = _restore(src, tmp_path / "out.png", tiny_grad_prior, "-v")
    assert result.exit_code == 0 and "engine ort on cpu" in result.output.splitlines()[0]  # -v: before the work
    result = _restore(src, tmp_path / "out2.png", tiny_grad_prior, "-v", "--engine", "torch")
    assert result.exit_code == 0 and "engine torch" in result.output
