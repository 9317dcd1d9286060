"""Fault injection: SIGKILL a batch and tiled restores at many points, fill the disk, make the output
read-only, damage the resume state; after each, the next run (``--skip-existing`` / ``--resume``)
completes, leaves no stray file and writes exactly what an uninterrupted run writes.

A faulty run is a ``fork`` of this process (torch is already imported, so a child costs a fraction
of a second) that runs the CLI in-process. Its kill points are deterministic: the child counts its
calls of ``os.fsync``, ``os.replace`` and ``os.pwrite`` (every durable step of the atomic writer, the
partial outputs and the resume state) and SIGKILLs itself just before the N-th. A reference run in a
child counts the same calls and names the file of each, so the chosen points are known to include
kills inside an image write and inside a resume-state update.
"""
from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from flowrt.cli.main import cli

FAST = ("--iters", "2", "--sigma", "10", "--seed", "3")
TILED = ("--tile", "16", "--overlap", "4")
HOOKED = ("fsync", "replace", "pwrite")

pytestmark = pytest.mark.slow


def photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    waves = [0.5 + 0.3 * np.sin(0.13 * xx * (c + 1) + 0.05 * yy + c) for c in range(3)]
    return np.clip(np.stack(waves, 2) * 255 + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _describe(name: str, args) -> str:
    """'fsync:NAME' / 'replace:NAME' / 'pwrite:NAME': the call and the file it touches."""
    target = args[0]
    if isinstance(target, int):
        try:
            target = os.readlink(f"/proc/self/fd/{target}")
        except OSError:
            target = "?"
    return f"{name}:{os.path.basename(str(target))}"


def _child(argv, kill_at, fsize, uid, write_fd) -> None:
    """In the forked child: hook os, apply limits, run the CLI, report JSON on ``write_fd``."""
    events = []
    for name in HOOKED:
        real = getattr(os, name)

        def hooked(*args, _real=real, _name=name, **kwargs):
            events.append(_describe(_name, args))
            if kill_at is not None and len(events) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*args, **kwargs)
        setattr(os, name, hooked)
    if fsize is not None:  # a "full disk": writes past fsize bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if uid is not None:
        os.setgid(uid)
        os.setuid(uid)
    result = CliRunner().invoke(cli, [str(a) for a in argv])
    report = {"exit": result.exit_code, "output": result.output, "events": events,
              "exception": None if result.exception is None or isinstance(result.exception, SystemExit)
              else repr(result.exception)}
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(write_fd, data):]


def forked(argv, *, kill_at=None, fsize=None, uid=None, timeout: float = 120) -> dict:
    """Run ``flowrt ARGV`` in a forked child; {'killed': bool, 'exit', 'output', 'events', 'exception'}."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns into pytest
        code = 70
        try:
            os.close(read_fd)
            _child(argv, kill_at, fsize, uid, write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks, deadline = [], timeout
    while True:
        ready, _, _ = select.select([read_fd], [], [], deadline)
        if not ready:  # a hang: the test fails, the child does not outlive it
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            raise AssertionError(f"flowrt {argv} hung for {timeout} s")
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    report = json.loads(b"".join(chunks)) if chunks else {}
    assert killed or os.WEXITSTATUS(status) == 0, f"child crashed: {status} {report}"
    report["killed"] = killed
    return report


def files(folder: Path) -> dict:
    """{relative path: bytes} of every file under ``folder`` (hidden ones included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def kill_points(events: list, wanted: int) -> list:
    """About ``wanted`` 1-based kill points spread over ``events``, always including every kill
    inside a temporary file's write (fsync/replace of a .tmp) up to half of them."""
    inside = [i + 1 for i, e in enumerate(events) if ".tmp" in e and not e.startswith("pwrite")]
    chosen = set(inside[:: max(1, len(inside) // (wanted // 2))])
    spread = np.linspace(1, len(events), wanted - len(chosen)).round().astype(int)
    return sorted(chosen | set(int(k) for k in spread))


@pytest.fixture
def batch_inputs(tmp_path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(photo(21, 27, 0)).save(root / "a.png")
    Image.fromarray(photo(24, 32, 1)).save(root / "b.jpg", quality=60)
    tifffile.imwrite(root / "sub" / "c.tif", photo(19, 23, 2), photometric="rgb")
    Image.fromarray(photo(17, 25, 3)[..., 0]).save(root / "sub" / "d.png")
    return root


def test_batch_killed_at_every_durable_step_resumes_to_the_same_outputs(batch_inputs, tiny_prior, tmp_path):
    argv = lambda out: ["batch", batch_inputs, "-o", out, "--recursive", "--model", tiny_prior, *FAST]
    reference = forked(argv(tmp_path / "ref"))
    assert reference["exit"] == 0 and not reference["killed"], reference
    expected = files(tmp_path / "ref")
    events = reference["events"]
    assert sum(e.startswith("fsync:.") and ".flowrt-" in e for e in events) == 4  # one per image
    for k in range(1, len(events) + 1):  # every one: the batch has few
        out = tmp_path / f"out{k}"
        killed = forked(argv(out), kill_at=k)
        assert killed["killed"], f"kill point {k} was not reached"
        again = CliRunner().invoke(cli, [str(a) for a in argv(out)] + ["--skip-existing"])
        assert again.exit_code == 0 and again.exception is None or isinstance(again.exception, SystemExit), again.output
        assert files(out) == expected, f"kill point {k} ({events[k - 1]}): outputs differ"
    assert len(events) >= 8  # kill points: every durable step of the batch, 8 for these four images
    # a rerun over finished outputs killed inside its first write: the old output stays whole, and
    # the --skip-existing run that then skips everything still removes the dead writer's temp file
    rewrite = tmp_path / "rewrite"
    shutil.copytree(tmp_path / "ref", rewrite)
    assert forked(argv(rewrite), kill_at=1)["killed"]
    assert any(name.endswith(".tmp") for name in files(rewrite))
    again = CliRunner().invoke(cli, [str(a) for a in argv(rewrite)] + ["--skip-existing"])
    assert again.exit_code == 0 and "skipped 4" in again.output, again.output
    assert files(rewrite) == expected


@pytest.mark.parametrize("suffix", [".png", ".tif"], ids=["tiled-png", "streamed-tiff"])
def test_tiled_restore_killed_at_many_points_resumes_to_the_same_image(suffix, tiny_prior, tmp_path):
    src = tmp_path / f"in{suffix}"
    pixels = photo(44, 52, 4)
    tifffile.imwrite(src, pixels, photometric="rgb") if suffix == ".tif" else Image.fromarray(pixels).save(src)
    argv = lambda out: ["restore", src, "-o", out, "--model", tiny_prior, *FAST, *TILED]
    (tmp_path / "ref").mkdir()
    reference = forked(argv(tmp_path / "ref" / f"out{suffix}"))
    assert reference["exit"] == 0, reference
    expected = files(tmp_path / "ref")
    events = reference["events"]
    points = kill_points(events, 10)  # 9 of the ~214 steps: the batch's 8 and these two 9s make 26
    assert len(points) >= 8
    state_updates = [k for k in points if "progress.npz" in events[k - 1] and ".tmp" in events[k - 1]]
    assert state_updates, "no kill inside a resume-state update"
    for k in points:
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        killed = forked(argv(folder / f"out{suffix}"), kill_at=k)
        assert killed["killed"], f"kill point {k} was not reached"
        again = CliRunner().invoke(cli, [str(a) for a in argv(folder / f"out{suffix}")] + ["--resume"])
        assert again.exit_code == 0, f"kill point {k} ({events[k - 1]}): {again.output}"
        assert files(folder) == expected, f"kill point {k} ({events[k - 1]}): output differs or stray files"


def test_a_damaged_resume_state_and_tile_cache_cost_only_their_work(tiny_prior, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(photo(44, 52, 5)).save(src)
    argv = lambda out: ["restore", src, "-o", out, "--model", tiny_prior, *FAST, *TILED]
    (tmp_path / "ref").mkdir()
    reference = forked(argv(tmp_path / "ref" / "out.png"))
    expected = files(tmp_path / "ref")
    last_band = max(i + 1 for i, e in enumerate(reference["events"])
                    if e.startswith("replace:") and "progress.npz" in e)
    for damage in ("flip", "truncate", "tile"):
        folder = tmp_path / damage
        folder.mkdir()
        assert forked(argv(folder / "out.png"), kill_at=last_band)["killed"]  # the last band's state is lost
        state = folder / "out.png.partial.state"
        if damage == "tile":
            cached = sorted(state.glob("tile-*.npy"))
            assert cached, "nothing cached to damage"
            cached[0].write_bytes(cached[0].read_bytes()[:60])
        else:
            data = bytearray((state / "progress.npz").read_bytes())
            if damage == "flip":
                data[len(data) // 2] ^= 0xFF
                data[40] ^= 0xFF
            (state / "progress.npz").write_bytes(bytes(data) if damage == "flip" else bytes(data[:len(data) // 3]))
        again = CliRunner().invoke(cli, [str(a) for a in argv(folder / "out.png")] + ["--resume"])
        assert again.exit_code == 0, again.output
        assert files(folder) == expected, damage


@pytest.mark.parametrize("command", ["batch", "tiled"])
def test_a_full_disk_fails_in_one_line_and_the_next_run_completes(command, batch_inputs, tiny_prior, tmp_path):
    out = tmp_path / "out"
    if command == "batch":
        argv = ["batch", batch_inputs, "-o", out, "--recursive", "--model", tiny_prior, *FAST]
        ref_argv = argv[:3] + [tmp_path / "ref"] + argv[4:]
        redo = ["--skip-existing"]
    else:
        out.mkdir()
        (tmp_path / "ref").mkdir()
        argv = ["restore", batch_inputs / "a.png", "-o", out / "a.png", "--model", tiny_prior, *FAST, *TILED]
        ref_argv = argv[:3] + [tmp_path / "ref" / "a.png"] + argv[4:]
        redo = ["--resume"]
    full = forked(argv, fsize=100)
    assert full["exit"] == 1 and full["exception"] is None, full
    lines = [line for line in full["output"].splitlines() if "File too large" in line]
    assert lines and all(line.count("File too large") == 1 for line in lines), full["output"]
    assert "Traceback" not in full["output"] and "internal error" not in full["output"]
    assert not [name for name in files(out) if not name.endswith((".partial",)) and "partial.state" not in name]
    assert forked(ref_argv)["exit"] == 0
    again = CliRunner().invoke(cli, [str(a) for a in argv] + redo)
    assert again.exit_code == 0, again.output
    assert files(out) == files(tmp_path / "ref")


def test_a_read_only_output_fails_in_one_line_and_the_next_run_completes(batch_inputs, tiny_prior, tmp_path):
    """Write permission is taken away from the output folder; as root the child drops to 'nobody'
    (root ignores permissions), so the files it reads are made readable to everyone first."""
    world = Path(tempfile.mkdtemp(prefix="flowrt-ro-"))
    try:
        shutil.copytree(tiny_prior, world / "prior")
        shutil.copytree(batch_inputs, world / "in")
        out = world / "out"
        out.mkdir()
        for path in [world, *world.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        out.chmod(0o555)
        argv = ["batch", world / "in", "-o", out, "--recursive", "--model", world / "prior", *FAST]
        uid = 65534 if os.geteuid() == 0 else None
        denied = forked(argv, uid=uid)
        assert denied["exit"] == 1 and denied["exception"] is None, denied
        failed = [line for line in denied["output"].splitlines() if line.startswith("failed:")]
        assert len(failed) == 4 and all("Permission denied" in line or "read-only" in line for line in failed), \
            denied["output"]
        assert files(out) == {}
        out.chmod(0o755)
        again = CliRunner().invoke(cli, [str(a) for a in argv] + ["--skip-existing"])
        assert again.exit_code == 0, again.output
        reference = forked(argv[:3] + [world / "ref"] + argv[4:])
        assert reference["exit"] == 0
        assert files(out) == files(world / "ref")
    finally:
        shutil.rmtree(world, ignore_errors=True)
