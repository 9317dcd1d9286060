"""--engine: the MAP's prior gradient from torch autograd or from the exported ONNX Runtime graph."""
from __future__ import annotations

import numpy as np
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
