"""Your own prior, first-class: ``flowrt train`` -> ``flowrt export`` -> ``flowrt restore --model`` runs
the ort engine (the packaged prior's) because the export writes the verified gradient graph."""
from __future__ import annotations

import numpy as np
import yaml
from PIL import Image

from flowrt.prior.folders import MANIFEST_NAME, PRIOR_GRAD_ONNX


def noisy_png(path, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:24, 0:40]
    clean = np.stack([120 + 60 * np.sin(xx / 5), 100 + 2 * yy, 90 + xx], -1)
    Image.fromarray(np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255).astype(np.uint8)).save(path)
    return path


def test_train_export_restore_runs_the_ort_engine(invoke_flowrt, tiny_config, train_dir, tmp_path):
    run = tmp_path / "run"
    result = invoke_flowrt("train", "--config", tiny_config, "--data", train_dir, "--out", run, "--steps", "2")
    assert result.exit_code == 0, result.output
    result = invoke_flowrt("export", run / "last.pt", "-o", tmp_path / "mine")
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load((tmp_path / "mine" / MANIFEST_NAME).read_text())
    assert PRIOR_GRAD_ONNX in manifest["files"]  # written by default ...
    checks = {c["name"]: c["passed"] for c in manifest["verification"]["checks"]}
    assert checks["onnx checker prior_grad.onnx"] and checks["prior_grad grad 48x80 natural"]  # ... and verified
    out = tmp_path / "out.png"
    result = invoke_flowrt("restore", noisy_png(tmp_path / "in.png"), "-o", out, "--model", tmp_path / "mine",
                           "--sigma", "15", "--iters", "2", "--device", "cpu", "-v")
    assert result.exit_code == 0, result.output
    assert "engine ort on cpu" in result.output
    assert np.asarray(Image.open(out)).shape == (24, 40, 3)


def test_no_gradients_skips_the_graph_and_the_ort_message_names_the_command(invoke_flowrt, tmp_path):
    from conftest import write_tiny_checkpoint
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.pt")
    result = invoke_flowrt("export", checkpoint, "-o", tmp_path / "bare", "--no-gradients")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "bare" / PRIOR_GRAD_ONNX).exists()
    result = invoke_flowrt("restore", noisy_png(tmp_path / "in.png"), "-o", tmp_path / "out.png",
                           "--model", tmp_path / "bare", "--sigma", "15", "--engine", "ort", "--iters", "2")
    assert result.exit_code != 0 and "flowrt export" in result.output and "export_checkpoint" not in result.output
