"""Issue 14, "nothing lost, no traceback": one test per defect a hostile user found. Each failed
before the fix. In-process on the tiny exported prior with 2 MAP iterations, except where the
defect lives in the process itself (stdout on a full device), which runs one child process.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from flowrt.cli.main import cli
from flowrt.io.image_file import read_image

FAST = ("--iters", "2", "--sigma", "10")
H, W = 40, 52


def photo(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    waves = [0.5 + 0.3 * np.sin(0.13 * xx * (c + 1) + 0.05 * yy + c) for c in range(3)]
    return np.clip(np.stack(waves, 2) * 255 + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def flowrt(tiny_prior):
    """flowrt(command, *args) -> click Result, in-process, tiny prior, fast settings."""
    def invoke(command, *args):
        argv = [command, *map(str, args), "--model", str(tiny_prior), *FAST]
        return CliRunner().invoke(cli, argv)
    return invoke


def names(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------- 1. the pixel limit on every path


def test_streamed_tiff_to_tiff_obeys_the_decompression_bomb_limit(flowrt, tmp_path, monkeypatch, one_line_error):
    src = tmp_path / "bomb.tif"
    tifffile.imwrite(src, photo(), photometric="rgb", compression="zlib", rowsperstrip=8)
    for out in ("out.tif", "out.png"):  # streamed and decoded routes: the same refusal, naming the flag
        error = one_line_error(flowrt("restore", src, "-o", tmp_path / out, "--tile", "16", "--max-pixels",
                                      H * W // 4), "decompression-bomb")
        assert "--max-pixels" in error and "FLOWRT_MAX_PIXELS" in error
    monkeypatch.setenv("FLOWRT_MAX_PIXELS", str(H * W // 4))
    one_line_error(flowrt("restore", src, "-o", tmp_path / "out.tif", "--tile", "16"), "decompression-bomb")
    assert names(tmp_path) == ["bomb.tif"]


def test_pillows_limit_holds_images_decoded_whole_not_streamed_ones(flowrt, tmp_path, monkeypatch, one_line_error):
    """The streamed route restores in bounded memory: it is not held to Pillow's limit (a gigapixel
    is its default); an image decoded whole is; --max-pixels none lifts both."""
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, photo(), photometric="rgb", compression="zlib", rowsperstrip=8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", H * W // 4)
    result = flowrt("restore", src, "-o", tmp_path / "out.tif", "--tile", "16", "--overlap", "4")
    assert result.exit_code == 0, result.output
    one_line_error(flowrt("restore", src, "-o", tmp_path / "out.png", "--tile", "16", "--overlap", "4"), "decompression-bomb")
    assert flowrt("restore", src, "-o", tmp_path / "out.png", "--tile", "16", "--overlap", "4", "--max-pixels", "none").exit_code == 0
    assert Image.MAX_IMAGE_PIXELS == H * W // 4   # lifted only while flowrt read the file


def test_a_declared_size_far_beyond_the_file_is_a_bomb(tmp_path, monkeypatch):
    from flowrt.errors import InputError
    from flowrt.io.limits import check_pixels
    monkeypatch.delenv("FLOWRT_MAX_PIXELS", raising=False)
    check_pixels("scan.tif", 12000, 12000, streamed=True, file_size=12000 * 12000 * 3 // 50)
    with pytest.raises(InputError, match="decompression bomb"):
        check_pixels("bomb.tif", 30000, 30000, streamed=True, file_size=100_000)
    with pytest.raises(InputError, match="decompression-bomb limit of 1073741824"):
        check_pixels("huge.tif", 40000, 40000, streamed=True, file_size=40000 * 40000 * 3)


def test_a_compressed_strip_too_large_to_decode_at_once_is_not_streamed(tmp_path, monkeypatch):
    import flowrt.io.tiff_stream as tiff_stream
    from flowrt.pipeline.run import TilingOptions
    from flowrt.pipeline.source import Route, open_source
    src = tmp_path / "one-strip.tif"
    tifffile.imwrite(src, photo(), photometric="rgb", compression="zlib", rowsperstrip=H)
    monkeypatch.setattr(tiff_stream, "MAX_SEGMENT_BYTES", H * W * 3 - 1)
    with pytest.raises(Exception, match="MiB decoded at once"):
        tiff_stream.TiffSource(src)
    with open_source(str(src), str(tmp_path / "o.tif"), 1, TilingOptions(tile=16)) as source:
        assert source.route is Route.TILED   # decoded whole, under the pixel limit, not streamed
    monkeypatch.setattr(tiff_stream, "MAX_SEGMENT_BYTES", H * W * 3)
    with open_source(str(src), str(tmp_path / "o.tif"), 1, TilingOptions(tile=16)) as source:
        assert source.route is Route.STREAMED


# ---------------------------------------------------------------- 2. temporary files of dead writers


def test_a_later_write_removes_temporaries_of_dead_writers_only(flowrt, tmp_path):
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(photo()).save(src)
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()                                   # a PID that no longer runs
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_tmp = out / f".a.png.flowrt-{child.pid}-k3j4h5.tmp"
        live_tmp = out / f".b.png.flowrt-{live.pid}-a1b2c3.tmp"
        foreign = out / ".a.png.x8y9z0.tmp"          # not flowrt's name: never touched
        for path in (dead_tmp, live_tmp, foreign):
            path.write_bytes(b"x" * 100)
        result = flowrt("restore", src, "-o", out / "a.png")
        assert result.exit_code == 0, result.output
        assert names(out) == sorted(["a.png", live_tmp.name, foreign.name])
    finally:
        live.kill()
        live.wait()


# ---------------------------------------------------------------- 3. --skip-existing verifies


def test_skip_existing_restores_a_truncated_output_again(flowrt, tmp_path, map_runs):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        Image.fromarray(photo(seed=i)).save(inputs / f"img{i}.png")
    out = tmp_path / "out"
    assert flowrt("batch", inputs, "-o", out).exit_code == 0
    good = (out / "img1.png").read_bytes()
    (out / "img1.png").write_bytes(good[:1000])
    map_runs.clear()
    result = flowrt("batch", inputs, "-o", out, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert len(map_runs) == 1 and "skipped 2" in result.output
    assert (out / "img1.png").read_bytes() == good


# ---------------------------------------------------------------- 4. one line, not a traceback


@pytest.mark.parametrize("route", ["whole", "tiled", "streamed"])
def test_a_full_disk_is_one_line(flowrt, tmp_path, monkeypatch, route, one_line_error):
    """ENOSPC from the final write (whole) or from the partial output (tiled .npy, streamed TIFF)."""
    suffix = ".tif" if route == "streamed" else ".png"
    src = tmp_path / f"a{suffix}"
    tifffile.imwrite(src, photo(), photometric="rgb") if suffix == ".tif" else Image.fromarray(photo()).save(src)
    tiles = () if route == "whole" else ("--tile", "16", "--overlap", "4")

    def full(*args):
        raise OSError(28, os.strerror(28))
    monkeypatch.setattr(os, "fsync" if route == "whole" else "pwrite", full)
    one_line_error(flowrt("restore", src, "-o", tmp_path / f"b{suffix}", *tiles), "no space left")
    assert not (tmp_path / f"b{suffix}").exists()
    assert not [p for p in names(tmp_path) if p.endswith(".tmp")]


def test_stdout_on_a_full_device_is_one_line(tiny_prior, tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(photo()).save(src)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "flowrt.cli.main", "restore", str(src), "-o", "-",
                               "--model", str(tiny_prior), *FAST], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING")]
    assert lines == ["Error: <stdout>: cannot write (No space left on device)"], done.stderr


def test_an_existing_folder_as_output_fails_before_the_restore(flowrt, tmp_path, map_runs, one_line_error):
    """-o naming an existing folder writes IN's name inside it (issue 13); when that name is itself a
    folder, the run fails in one line before any MAP run (it used to crash after the restore)."""
    src = tmp_path / "a.png"
    Image.fromarray(photo()).save(src)
    (tmp_path / "folder.png" / "a.png").mkdir(parents=True)
    (tmp_path / "folder.tif" / "a.tif").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "a.tif", photo(), photometric="rgb")
    one_line_error(flowrt("restore", src, "-o", tmp_path / "folder.png"), "is a folder")
    one_line_error(flowrt("restore", tmp_path / "a.tif", "-o", tmp_path / "folder.tif", "--tile", "16"),
                   "is a folder")
    assert map_runs == []


def test_a_seed_out_of_range_is_one_line(flowrt, tmp_path, one_line_error):
    src = tmp_path / "a.png"
    Image.fromarray(photo()).save(src)
    one_line_error(flowrt("restore", src, "-o", tmp_path / "b.png", "--seed", "99999999999999999999"), "--seed")
    one_line_error(flowrt("restore", src, "-o", tmp_path / "b.png", "--seed", "-1"), "--seed")


def test_a_truncated_resume_state_starts_over_and_ends_equal(flowrt, tmp_path, monkeypatch):
    import flowrt.pipeline.run as run
    from flowrt.tiling.streamed import partial_paths
    src = tmp_path / "a.png"
    Image.fromarray(photo()).save(src)
    tiled = ("--tile", "16", "--overlap", "4")
    assert flowrt("restore", src, "-o", tmp_path / "ref.png", *tiled).exit_code == 0
    real, calls = run.restore_region, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(run, "restore_region", interrupted)
    out = tmp_path / "out.png"
    assert flowrt("restore", src, "-o", out, *tiled).exit_code == 130
    monkeypatch.setattr(run, "restore_region", real)
    progress = partial_paths(out)[1] / "progress.npz"
    progress.write_bytes(progress.read_bytes()[:100])
    result = flowrt("restore", src, "-o", out, *tiled, "--resume")
    assert result.exit_code == 0, result.output
    assert np.array_equal(read_image(out).rgb, read_image(tmp_path / "ref.png").rgb)
    assert names(tmp_path) == ["a.png", "out.png", "ref.png"]


# ---------------------------------------------------------------- 5. the smaller ones


def test_a_tiny_tile_names_the_tile_not_only_the_default_overlap(flowrt, tmp_path, one_line_error):
    src = tmp_path / "a.png"
    Image.fromarray(photo()).save(src)
    line = one_line_error(flowrt("restore", src, "-o", tmp_path / "b.png", "--tile", "3"), "--tile 3")
    assert "overlap of 32" in line


def test_a_truncated_partial_says_what_is_wrong(tmp_path):
    from flowrt.io.array_stream import NpySink
    path = tmp_path / "x.npy.partial"
    NpySink(path, (16, 16, 3), np.uint8).close()
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 10)
    with pytest.raises(ValueError) as caught:
        NpySink(path, (16, 16, 3), np.uint8, reopen=True)
    assert "bytes, not the" in str(caught.value) and "truncated" in str(caught.value)


def test_an_output_folder_that_cannot_be_made_is_a_user_error(flowrt, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.fromarray(photo()).save(inputs / "sub" / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("a file where the folder should go")
    result = flowrt("batch", inputs, "-o", tmp_path / "out", "--recursive")
    assert result.exit_code == 1
    assert "internal error" not in result.output
    assert "cannot create the output folder" in result.output


def test_broken_links_in_a_batch_are_reported(flowrt, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(photo()).save(inputs / "good.png")
    (inputs / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (inputs / "loop.png").symlink_to(inputs / "loop.png")
    result = flowrt("batch", inputs, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "dangling symbolic link" in result.output and "symbolic link loop" in result.output
    assert "restored 1 image(s), 2 failed" in result.output
    assert names(tmp_path / "out") == ["good.png"]


def test_a_failed_optimiser_fails_unless_the_fallback_is_accepted(flowrt, tmp_path, one_line_error):
    src = tmp_path / "a.png"
    Image.fromarray(photo()).save(src)
    one_line_error(flowrt("restore", src, "-o", tmp_path / "b.png", "--lam", "1e38"), "--accept-fallback")
    assert not (tmp_path / "b.png").exists()
    result = flowrt("restore", src, "-o", tmp_path / "b.png", "--lam", "1e38", "--accept-fallback")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.png").exists()


def test_a_streamed_restore_refuses_a_hard_link_to_its_input(flowrt, tmp_path, one_line_error):
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, photo(), photometric="rgb")
    os.link(src, tmp_path / "link.tif")
    before = src.read_bytes()
    for out in ("link.tif", "a.tif"):
        one_line_error(flowrt("restore", src, "-o", tmp_path / out, "--tile", "16"), "refusing to overwrite")
    assert src.read_bytes() == before and os.stat(src).st_nlink == 2


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".tiled.tif"])
def test_an_output_is_trusted_only_whole(tmp_path, suffix):
    from flowrt.io.complete import is_complete_image
    path = tmp_path / f"out{suffix}"
    if suffix.endswith(".tif"):
        tile = {"tile": (16, 16)} if "tiled" in suffix else {"rowsperstrip": 8}
        tifffile.imwrite(path, photo(), photometric="rgb", compression="zlib", **tile)
    else:
        Image.fromarray(photo()).save(path)
    whole = path.read_bytes()
    assert is_complete_image(path)
    for cut in (1, 9, len(whole) // 3, len(whole) // 2, len(whole) - 2):
        path.write_bytes(whole[:cut])
        assert not is_complete_image(path), cut
    path.write_bytes(whole[:100] + bytes([whole[100] ^ 1]) + whole[101:])
    if suffix == ".png":  # a flipped bit breaks a CRC
        assert not is_complete_image(path)
