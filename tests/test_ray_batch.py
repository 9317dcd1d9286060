"""``flowrt batch --ray`` on a real Ray cluster started here (one for the module: 2 worker CPUs,
127.0.0.1, no dashboard): the same files, bytes, messages and exit code as the local batch; a
large image's tiles as tasks; a worker killed mid-batch costing nothing; resume with
--skip-existing; without Ray, one line saying how to install it. Tiny prior, tiny images, --iters 2.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowrt.cli.main import cli

ray = pytest.importorskip("ray")

ARGS = ("--iters", "2", "--sigma", "5")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for this module; the CLI, run in this process, uses its connection."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024,
             _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def photos(tmp_path, make_images) -> Path:
    """in/ with five small images (PNG, JPEG, TIFF), one in sub/, and a truncated bad.png."""
    root = tmp_path / "in"
    make_images(root, ((37, 41, ".png"), (45, 33, ".jpg"), (40, 39, ".tif"), (29, 31, ".png")), seed=3)
    make_images(root / "sub", ((33, 35, ".png"),), seed=9)
    data = (root / "img00.png").read_bytes()
    (root / "bad.png").write_bytes(data[: len(data) // 2])
    return root


@pytest.fixture
def batch(tiny_prior):
    """``flowrt batch`` in this process. One torch thread, as each Ray task has (a task asks for one
    CPU): the comparisons are then independent of how many threads torch would pick here (CI does
    not set OMP_NUM_THREADS); conftest restores the count after the test."""
    import torch
    torch.set_num_threads(1)

    def invoke(*args):
        return CliRunner().invoke(cli, ["batch", "--model", str(tiny_prior), *ARGS, *map(str, args)])  # args win
    return invoke


def tree(folder: Path) -> dict:
    """relative path -> bytes of every file under folder (hidden temp files included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def failures(result) -> list:
    return sorted(line for line in result.stderr.splitlines() if line.startswith("failed:"))


@pytest.mark.parametrize("output", ["driver", "worker"])
def test_ray_batch_is_byte_identical_to_the_local_batch(cluster, photos, batch, tmp_path, output):
    local = batch(photos, "-o", tmp_path / "local", "--recursive")
    on_ray = batch(photos, "-o", tmp_path / "ray", "--recursive", "--ray", "auto", "--ray-output", output)
    assert local.exit_code == on_ray.exit_code == 1, on_ray.output
    assert "Traceback" not in on_ray.output
    assert failures(on_ray) == failures(local) and "bad.png" in failures(on_ray)[0]
    assert on_ray.stderr.splitlines()[-1] == local.stderr.splitlines()[-1]
    assert on_ray.stderr.splitlines()[-1].startswith("restored 5 image(s), 1 failed")
    expected = tree(tmp_path / "local")
    assert set(expected) == {"img00.png", "img01.png", "img02.tif", "img03.png", "sub/img00.png"}   # JPEG -> PNG
    assert tree(tmp_path / "ray") == expected


@pytest.mark.parametrize("output", ["driver", "worker"])
def test_a_large_images_tiles_are_tasks_and_blend_as_locally(cluster, tmp_path, make_images, batch, monkeypatch,
                                                            output):
    """Tiled (--tile 16 on a 70x90 JPEG: 5 x 6 tiles): the tiles run on the workers, the driver
    blends them; the JPEG's own blocks are cut per tile (RestorationPlan.cut). In worker mode the
    worker finds the image is tiled and hands it back to the driver."""
    make_images(tmp_path / "in", ((70, 90, ".jpg"), (50, 36, ".png")), seed=5)
    import flowrt.pipeline.region
    driver_maps = []
    monkeypatch.setattr(flowrt.pipeline.region, "restore_region",
                        lambda *a, **k: driver_maps.append(a[1]) or pytest.fail("restored on the driver"))
    on_ray = batch(tmp_path / "in", "-o", tmp_path / "ray", "--tile", "16", "--overlap", "8", "--ray", "auto",
                   "--ray-output", output)
    monkeypatch.undo()
    local = batch(tmp_path / "in", "-o", tmp_path / "local", "--tile", "16", "--overlap", "8")
    assert local.exit_code == on_ray.exit_code == 0, on_ray.output
    assert driver_maps == []
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_skip_existing_resumes_a_ray_batch(cluster, photos, batch, tmp_path):
    out = tmp_path / "out"
    (photos / "bad.png").unlink()
    assert batch(photos, "-o", out, "--ray").exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    result = batch(photos, "-o", out, "--recursive", "--skip-existing", "--ray")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1].startswith("restored 1 image(s), skipped 4 already done")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (out / "sub" / "img00.png").is_file()


def _worker_running(name: str) -> list:
    """Pids of this test's Ray worker processes now running task ``name`` (process title 'ray::NAME')."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(f"ray::{name}") and _descends_from(int(entry.name), os.getpid()):
            pids.append(int(entry.name))
    return pids


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@contextlib.contextmanager
def killing_one_worker(task: str):
    """While the block runs, SIGKILL the first worker seen running ``task``; yields the pids killed."""
    killed, stop = [], threading.Event()

    def kill_one():
        while not killed and not stop.is_set():
            for pid in _worker_running(task):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.005)
    killer = threading.Thread(target=kill_one)
    killer.start()
    try:
        yield killed
    finally:
        stop.set()
        killer.join()


SLOW = ("--iters", "30")  # long enough per image for the killer to catch one mid-task


def test_a_worker_killed_mid_batch_loses_nothing(cluster, photos, batch, tmp_path):
    """SIGKILL one worker while it restores an image: Ray reruns the task on another worker and
    the outputs are complete, identical to a local run, with no temporary files left."""
    (photos / "bad.png").unlink()
    with killing_one_worker("restore_pixels") as killed:
        on_ray = batch(photos, "-o", tmp_path / "ray", "--ray", *SLOW)
    assert killed, "no worker was caught running a task"
    local = batch(photos, "-o", tmp_path / "local", *SLOW)
    assert on_ray.exit_code == local.exit_code == 0, on_ray.output
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_a_task_whose_worker_keeps_dying_fails_its_image_and_skip_existing_redoes_it(
        cluster, photos, batch, tmp_path, tiny_prior):
    """With no retries left, the killed worker's image is reported (one line) and the others are
    written; a re-run with --skip-existing restores just that one, and the folder then matches a
    local run."""
    from flowrt.cli.restore_options import build_options
    from flowrt.distributed.cluster import RaySettings
    from flowrt.distributed.ray_batch import run_batch_on_ray
    from flowrt.distributed.worker import PriorSpec
    from flowrt.pipeline.batch import BatchJob
    from flowrt.pipeline.run import TilingOptions, model_key

    (photos / "bad.png").unlink()
    opts = build_options(sigma=5.0, iters=30)
    spec = PriorSpec(str(tiny_prior), "auto", "auto", model_key(tiny_prior))
    lines = []
    with killing_one_worker("restore_pixels") as killed:
        report = run_batch_on_ray(BatchJob.plan(photos, tmp_path / "ray"), opts, TilingOptions(), spec,
                                  RaySettings(max_retries=0), report=lines.append)
    assert killed
    assert report.summary.done == 3 and len(report.summary.failed) == 1
    assert lines == [f"failed: {report.summary.failed[0][1]}"]
    assert "lost on the cluster after 0 retries" in lines[0] and "\n" not in lines[0]
    assert len(list((tmp_path / "ray").iterdir())) == 3   # nothing half-written for the lost one
    again = batch(photos, "-o", tmp_path / "ray", "--skip-existing", "--ray", *SLOW)
    assert again.exit_code == 0
    assert again.stderr.splitlines()[-1].startswith("restored 1 image(s), skipped 3 already done")
    batch(photos, "-o", tmp_path / "local", *SLOW)
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_without_ray_one_line_says_how_to_install_it(photos, batch, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = batch(photos, "-o", tmp_path / "out", "--ray", "local")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == 'Error: flowrt batch --ray needs Ray, which is not installed: pip install "flowrt[ray]"'
    assert not (tmp_path / "out").exists()


def test_an_unreachable_cluster_is_one_line(photos, batch, tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    result = batch(photos, "-o", tmp_path / "out", "--ray", "127.0.0.1:1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("Error: cannot reach a Ray cluster at '127.0.0.1:1'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_batch_help_and_a_local_batch_do_not_import_ray(photos, tmp_path, tiny_prior):
    probe = ("import sys; from flowrt.cli.main import cli\n"
             "try:\n    cli.main(sys.argv[1:], prog_name='flowrt')\nexcept SystemExit:\n    pass\n"
             "print('RAY' if 'ray' in sys.modules else 'NO RAY')")
    (photos / "bad.png").unlink()
    for args in (["batch", "--help"], ["batch", str(photos), "-o", str(tmp_path / "out"), "--model",
                                       str(tiny_prior), *ARGS]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert proc.stdout.strip().splitlines()[-1] == "NO RAY", proc.stderr


def test_progress_bar_counts_images_and_a_tiled_images_tiles(monkeypatch):
    import io
    from flowrt.distributed.ray_batch import _Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = _Progress(3)
    bar.image_done()
    bar.tiles(1, 4)
    bar.image_done()  # another image finishing meanwhile leaves the tiled one's quarter alone
    assert bar._bar.n == pytest.approx(2.25)
    bar.tiles(4, 4)
    bar.image_done(tiled=True)
    assert bar._bar.n == pytest.approx(3)
    bar.close()
    assert "images (ray)" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    quiet = _Progress(2)
    quiet.image_done()
    assert quiet._bar is None
