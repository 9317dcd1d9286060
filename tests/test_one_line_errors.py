"""Every traceback of issue 24's point 5 is one line now (build point 4): closed stdio, Ctrl-C at any
moment (inside a numba kernel too), API arrays over the pixel limit, API masks given as arrays."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowrt.errors import InputError


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", NO_COLOR="1", PYTHONWARNINGS="ignore")
    return env


@pytest.fixture
def noisy(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48]
    img = 128 + 60 * np.sin(xx / 5.0 + yy / 7.0)[..., None] + rng.normal(0, 20, (48, 48, 3))
    path = tmp_path / "n.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("closed", ["stdout", "stdin"])
def test_closed_stdio_is_one_line(noisy, tmp_path, tiny_prior, closed):
    fd = 1 if closed == "stdout" else 0
    args = (["restore", noisy, "-o", "-"] if closed == "stdout" else ["restore", "-", "-o", tmp_path / "o.png"])
    result = subprocess.run([sys.executable, "-m", "flowrt.cli.main", *map(str, args), "--model", str(tiny_prior),
                             "--sigma", "20"], preexec_fn=lambda: os.close(fd), stderr=subprocess.PIPE,
                            text=True, env=_env(), timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "is closed" in lines[0], result.stderr


def test_a_broken_pipe_on_stdout_is_a_failure(noisy, tiny_prior):
    cli = subprocess.Popen([sys.executable, "-m", "flowrt.cli.main", "restore", str(noisy), "-o", "-", "--model",
                            str(tiny_prior), "--sigma", "20", "--start", "blur", "--iters", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert len(cli.stdout.read(10)) == 10   # a reader that stops early, as `| head -c 10`
    cli.stdout.close()
    err = cli.stderr.read().decode()
    assert cli.wait(timeout=120) != 0
    assert err.strip().splitlines() == ["Error: <stdout>: cannot write (Broken pipe)"]


def test_an_interrupt_inside_a_numba_kernel_is_one_line():
    from cli.common import report_errors
    from flowrt.errors import was_interrupted

    @click.command()
    @report_errors
    def command():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:   # what numba's dispatcher raises when Ctrl-C lands inside a kernel
            raise SystemError("CPUDispatcher(<function filter_groups>) returned a result with an exception set")

    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        try:
            raise SystemError("CPUDispatcher")
        except SystemError as exc:
            assert was_interrupted(exc) and not was_interrupted(SystemError("no cause"))
    result = CliRunner().invoke(command, [])
    assert result.exit_code == 130 and result.output.strip() == "interrupted"
    assert isinstance(result.exception, SystemExit)   # an exit code, not a traceback
    with pytest.raises(SystemError):   # any other SystemError is a real bug and stays loud
        @click.command()
        @report_errors
        def other():
            raise SystemError("something else")
        other.main([], standalone_mode=False)


def test_ctrl_c_during_a_restore_is_one_line(noisy, tmp_path):
    """SIGINT while the denoiser (numba) or the MAP runs, at a few moments; never a traceback. The
    restore is sized (576 px, 10 MAP iterations: about 10 s on a quiet 2-core machine) so that every
    signal lands before it ends: on a fast machine a 384 px one finished in 2.9 s, and a signal after
    the CLI returned killed the exiting interpreter (-2)."""
    big = tmp_path / "big.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (576, 576, 3), dtype=np.uint8)).save(big)
    warm = ("import sys; from flowrt.cli.main import cli; import flowrt.denoise.grouped, flowrt.pipeline.run\n"
            "print('ready', flush=True); sys.stdin.readline(); cli(sys.argv[1:])")
    for delay in (0.5, 1.5, 3.0):
        proc = subprocess.Popen([sys.executable, "-c", warm, "restore", str(big), "-o", str(tmp_path / "o.png"),
                                 "--sigma", "30", "--engine", "ort", "--iters", "10"], env=_env(), text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err and "SystemError" not in err, err
        assert proc.returncode in (0, 130), err
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1] == "interrupted"
        assert not (tmp_path / "o.png.partial").exists()


def test_api_arrays_over_the_pixel_limit_are_one_line(monkeypatch):
    import flowrt
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputError, match="decompression-bomb limit of 1000 pixels"):
        flowrt.restore(np.zeros((100, 100, 3), np.uint8), sigma=10)


def test_api_masks_may_be_arrays(tiny_prior):
    import flowrt
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (24, 28, 3), dtype=np.uint8)
    hole = np.zeros((24, 28), bool)
    hole[8:14, 8:16] = True
    for mask in (hole, hole.astype(np.uint8) * 255, hole.astype(np.float32)):
        result = flowrt.restore(img, mask=mask, model=tiny_prior, iters=2, start="blur")
        assert "inpaint 48 missing pixels" in result.plan.describe() and result.image.shape == img.shape
    with pytest.raises(InputError, match="the mask is"):
        flowrt.restore(img, mask=np.zeros((5, 5), bool), model=tiny_prior, iters=2)


def test_ctrl_c_waits_for_a_check_point_and_a_second_press_stops_at_once():
    """The first SIGINT is deferred to interrupts.check(); nothing raises inside native calls."""
    import os
    from flowrt import interrupts
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal, even under `&`
    try:
        _check_points(os, interrupts)
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # a process started with Ctrl-C ignored keeps ignoring it
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            interrupts.check()
    finally:
        signal.signal(signal.SIGINT, outer)


def _check_points(os, interrupts):
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)          # the handler has run: only a flag is set
            interrupts.check()
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)   # raises here, without a check point
            time.sleep(0.05)
            pytest.fail("the second press did not stop at once")
    with interrupts.deferred():   # nothing pressed: nothing raised, and the flag does not leak
        interrupts.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
