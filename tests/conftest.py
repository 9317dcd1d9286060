"""Shared fixtures: tiny synthetic photo folders, a tiny training config, and a CLI runner.

Everything is made in ``tmp_path`` from fixed seeds; no test reads ../shared/data.
Sizes are odd on purpose so that cropping and padding bugs show.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# One OpenMP thread for the suite and every process it starts, set before anything imports torch:
# tests/test_fault_injection.py forks restores, and libgomp's thread pool, once started with more
# than one thread in the parent, deadlocks a forked child (seen as a hang in CI, where
# OMP_NUM_THREADS is unset); on a 2-core CI machine the tests' subprocesses would also oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
from typing import Iterable, Tuple

import numpy as np
import pytest
import yaml

# A model small enough for a training step in a few milliseconds: 2 levels, 1 step, width 8.
TINY_CONFIG = {
    "model": {"levels": 2, "steps_per_level": 1, "width": 8},
    "data": {"train_dir": None, "val_dir": None, "patch": 16, "batch": 4, "val_crops_per_image": 2},
    "loss": {"aux_fraction": 0.5},
    "optim": {"lr": 0.005, "warmup": 2, "steps": 4},
    "run": {"device": "cpu", "threads": 1, "seed": 0, "log_every": 1, "val_every": 2, "ckpt_every": 2},
}

# (height, width, suffix): odd sides, every supported container.
GOOD_IMAGES: Tuple[Tuple[int, int, str], ...] = ((37, 41, ".png"), (45, 33, ".jpg"), (40, 39, ".tif"))


def pytest_collection_modifyitems(config, items):
    """Skip ``@pytest.mark.cuda`` tests cleanly on machines without a CUDA device."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items:
        return
    import torch  # only paid for when some collected test needs CUDA
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in cuda_items:
        item.add_marker(skip)


def synthetic_photo(height: int, width: int, seed: int) -> np.ndarray:
    """(height, width, 3) uint8: oriented colour waves plus mild noise; one family, so val resembles train."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    angle = rng.uniform(0, np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    channels = [0.5 + 0.3 * np.sin(0.25 * along + rng.uniform(0, 2 * np.pi)) for _ in range(3)]
    img = np.stack(channels, axis=2) + rng.normal(0, 0.02, (height, width, 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_images(folder: Path, specs: Iterable[Tuple[int, int, str]], seed: int = 0) -> list:
    """Write one synthetic photo per (height, width, suffix) into ``folder``; returns the paths."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w, suffix) in enumerate(specs):
        path = folder / f"img{i:02d}{suffix}"
        Image.fromarray(synthetic_photo(h, w, seed + i)).save(path)
        paths.append(path)
    return paths


def write_config(path: Path, overrides: dict = None) -> Path:
    """TINY_CONFIG with per-section ``overrides`` merged in, as YAML at ``path``."""
    cfg = {section: dict(values) for section, values in TINY_CONFIG.items()}
    for section, values in (overrides or {}).items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def train_dir(tmp_path) -> Path:
    """Three odd-sized synthetic photos (PNG, JPEG, TIFF)."""
    folder = tmp_path / "train"
    write_images(folder, GOOD_IMAGES, seed=0)
    return folder


@pytest.fixture
def val_dir(tmp_path) -> Path:
    folder = tmp_path / "val"
    write_images(folder, ((35, 37, ".png"), (33, 49, ".png")), seed=100)
    return folder


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    """Path of a YAML holding TINY_CONFIG."""
    return write_config(tmp_path / "tiny.yaml")


def cli_env() -> dict:
    """Environment for child processes: one thread each (the machine has two cores), no colour."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_COLOR="1", PYTHONWARNINGS="ignore")
    return env


def run_module(module: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` in a child process with ``cli_env()``; output as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=cli_env())


@pytest.fixture
def run_python_module():
    """The ``run_module`` helper, as a fixture."""
    return run_module


@pytest.fixture
def run_flowrt():
    """Run ``python -m flowrt.cli.main ARGS`` in a child process; returns the CompletedProcess (text)."""
    def run(*args, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_module("flowrt.cli.main", *args, timeout=timeout)
    return run


@pytest.fixture
def invoke_flowrt():
    """Run the click group in this process (fast: torch is already imported); returns click's Result.

    ``Result.stderr`` is what a user would see; an exception other than SystemExit
    in ``Result.exception`` means a traceback would have leaked.
    """
    from click.testing import CliRunner
    from flowrt.cli.main import cli

    def invoke(*args: str):
        return CliRunner().invoke(cli, [str(a) for a in args])
    return invoke


@pytest.fixture(autouse=True)
def _no_timed_progress_lines(monkeypatch):
    """Off a terminal a long restore logs a line every few seconds; on this shared machine a tiny
    restore may pass that mark, so tests that count stderr lines get none (tests/test_cli_output.py
    checks the lines themselves)."""
    monkeypatch.setenv("FLOWRT_PROGRESS_EVERY", "inf")   # subprocesses too


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Training sets torch's thread count from its config; give the next test the count it had."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    yield
    if before is not None:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _default_pixel_limit():
    """An in-process CLI run with --max-pixels sets the process's limit; give the next test the default."""
    yield
    from flowrt.io.limits import set_max_pixels
    set_max_pixels("default")


@pytest.fixture
def make_images():
    """The ``write_images`` helper, as a fixture (test modules do not import conftest)."""
    return write_images


@pytest.fixture
def make_config():
    """The ``write_config`` helper, as a fixture."""
    return write_config


def write_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A flowrt checkpoint (the train loop's format, with its TrainConfig) of an untrained tiny flow:
    2 levels, 1 step, width 8, ActNorm initialised on random data and every weight perturbed (so the
    couplings are not the identity). Nothing is trained; it takes a fraction of a second."""
    import torch
    from flowrt.train.checkpoint import FORMAT, atomic_save
    from flowrt.train.config import ModelConfig, TrainConfig, to_dict
    from flowrt.prior.flow import FlowModel

    cfg = TrainConfig(model=ModelConfig(levels=2, steps_per_level=1, width=8))
    model = FlowModel(cfg.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.initialize(torch.rand(4, 3, 12, 20, generator=gen))
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    atomic_save({"format": FORMAT, "config": to_dict(cfg), "model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_prior(tmp_path_factory) -> Path:
    """Folder of a verified ``flowrt export`` of the tiny checkpoint (``--model`` for restore/batch).

    Shared by the whole session (about 3 s to export); tests must not modify it.
    """
    from flowrt.export.pipeline import export_checkpoint

    root = tmp_path_factory.mktemp("tiny_prior")
    checkpoint = write_tiny_checkpoint(root / "tiny.pt")
    folder, report = export_checkpoint(checkpoint, root / "prior")
    assert report.passed
    return Path(folder)


@pytest.fixture(scope="session")
def tiny_grad_prior(tmp_path_factory) -> Path:
    """Like ``tiny_prior``, exported with the gradient graphs (prior_grad.onnx, generator_vjp.onnx).

    About a minute and a half on 2 cores (tracing and the dynamo exporter); tests must not modify it.
    """
    from flowrt.export.pipeline import export_checkpoint

    root = tmp_path_factory.mktemp("tiny_grad_prior")
    checkpoint = write_tiny_checkpoint(root / "tiny.pt")
    folder, report = export_checkpoint(checkpoint, root / "prior", gradients=True)
    assert report.passed
    return Path(folder)


@pytest.fixture
def map_runs(monkeypatch) -> list:
    """One entry per MAP run during the test: flowrt.solve.solver.map_restore (the torch engine) or
    flowrt.solve.numpy_solver.map_restore_numpy (the ort engine)."""
    import flowrt.solve.numpy_solver
    import flowrt.solve.solver
    calls = []

    def counted(module, name):
        real = getattr(module, name)

        def counting(*args, **kwargs):
            calls.append(1)
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, counting)
    counted(flowrt.solve.solver, "map_restore")
    counted(flowrt.solve.numpy_solver, "map_restore_numpy")
    return calls


def expect_one_line_error(result, fragment: str) -> str:
    """The single 'Error:' line of a failed CliRunner run (no traceback), checked to contain ``fragment``."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert fragment.lower() in errors[0].lower(), errors[0]
    return errors[0]


@pytest.fixture
def one_line_error():
    """The ``expect_one_line_error`` helper, as a fixture."""
    return expect_one_line_error
