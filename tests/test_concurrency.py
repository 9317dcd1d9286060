"""Two runs on one output: the second fails in one line, the first finishes whole; a crashed run's
lock is taken over so --resume works (issue 24, build point 1). Real processes, tiny prior."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrt.io.complete import is_complete_image
from flowrt.io.output_lock import OutputBusy, lock_path, output_lock

SLOW = ("--sigma", "20", "--start", "blur", "--iters", "30", "--seed", "1")
# a child that imports the CLI, then waits for a line on stdin before it runs: its start-up (seconds
# on a busy machine) is paid before the race, so the second run really meets the first one running
WARM = ("import sys, numpy, PIL.Image; from flowrt.cli.main import cli; import flowrt.pipeline.run\n"
        "print('ready', flush=True); sys.stdin.readline(); cli(sys.argv[1:])")


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_COLOR="1", PYTHONWARNINGS="ignore")
    return env


def _warm(*args) -> subprocess.Popen:
    """The CLI with ``args`` in a child, imported and waiting for ``_go``."""
    proc = subprocess.Popen([sys.executable, "-c", WARM, *map(str, args)], env=_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.communicate()
    return proc


def _go(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _start(*args) -> subprocess.Popen:
    proc = _warm(*args)
    _go(proc)
    return proc


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


@pytest.fixture
def noisy(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    img = 128 + 60 * np.sin(xx / 5.0 + yy / 7.0)[..., None] + rng.normal(0, 20, (64, 64, 3))
    path = tmp_path / "n.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("tiling", [("--tile", "32", "--overlap", "8"), ("--tile", "0")], ids=["tiled", "whole"])
def test_a_second_run_on_the_same_output_fails_in_one_line(noisy, tmp_path, tiny_prior, tiling):
    out = tmp_path / "o.png"
    args = ("restore", noisy, "-o", out, "--model", tiny_prior, *SLOW, *tiling)
    first, second = _warm(*args), _warm(*args)
    _go(first)
    _wait_for(lock_path(out), first)
    _go(second)
    _, second_err = second.communicate(timeout=120)
    assert first.poll() is None, "the first run ended before the second one tried: the test proves nothing"
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode != 0
    lines = second_err.strip().splitlines()
    assert len(lines) == 1 and "another flowrt run" in lines[0] and "Traceback" not in second_err, second_err
    assert is_complete_image(out)
    assert np.asarray(Image.open(out)).reshape(-1, 3).min(axis=1).max() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.png", "o.png"]   # no partial, no lock left


def test_a_killed_runs_lock_is_taken_over_and_resume_continues(noisy, tmp_path, tiny_prior):
    out = tmp_path / "o.png"
    args = ("restore", noisy, "-o", out, "--model", tiny_prior, *SLOW, "--tile", "32", "--overlap", "8")
    first = _start(*args)
    _wait_for(out.with_name("o.png.partial.state") / "progress.npz", first)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert lock_path(out).exists()   # a crash cannot remove it; the kernel dropped the flock
    resumed = subprocess.run([sys.executable, "-m", "flowrt.cli.main", *map(str, args), "--resume"],
                             env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert is_complete_image(out) and not lock_path(out).exists()


def test_the_lock_is_reentrant_here_and_exclusive_across_processes(tmp_path):
    out = tmp_path / "x.png"
    with output_lock(out):
        with output_lock(out):
            pass
        assert lock_path(out).exists()
        held = subprocess.run([sys.executable, "-c", "import sys; from flowrt.io.output_lock import output_lock\n"
                               f"with output_lock({str(out)!r}): pass"], capture_output=True, text=True, env=_env())
        assert held.returncode != 0 and "another flowrt run (process" in held.stderr
    assert not lock_path(out).exists()
    lock_path(out).write_text("999999999")   # left by a dead process: taken over
    with output_lock(out):
        pass
    assert not lock_path(out).exists()
    with pytest.raises(OutputBusy):
        child = subprocess.Popen([sys.executable, "-c", "import time; from flowrt.io.output_lock import output_lock\n"
                                  f"with output_lock({str(out)!r}):\n print('held', flush=True); time.sleep(30)"],
                                 stdout=subprocess.PIPE, text=True, env=_env())
        try:
            assert child.stdout.readline().strip() == "held"
            with output_lock(out):
                pass
        finally:
            child.kill()
            child.wait()
