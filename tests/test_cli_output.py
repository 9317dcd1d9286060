"""``flowrt restore`` as issue 13 asks: output control (-o folder, --format, --quality, WebP and
BMP, ``-o -`` refused on a terminal), the clean-input fast path and --force, the summary line and
-q, --device spelling, and help texts that show defaults and examples. In-process, tiny prior."""
from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowrt.cli.main import cli
from flowrt.io.image_file import read_image


def noisy(h: int = 27, w: int = 35, sigma: float = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    img = np.stack([70 + 110 * (a * yy + (1 - a) * xx) for a in rng.uniform(0, 1, 3)], axis=2)
    return np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


def clean(h: int = 30, w: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(60 + 3 * xx + 2 * yy).astype(np.uint8), (200 - 2 * xx).astype(np.uint8),
                     np.full((h, w), 128, np.uint8)], axis=2)


@pytest.fixture
def run(tiny_prior):
    def invoke(*args, iters: int = 2):
        argv = ["restore", *map(str, args), "--iters", str(iters), "--model", str(tiny_prior)]
        return CliRunner().invoke(cli, argv)
    return invoke


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(noisy()).save(path)
    return path


# ---------------------------------------------------------------- output control


def test_output_folder_keeps_the_input_name(run, photo, tmp_path, one_line_error):
    out = tmp_path / "out"
    out.mkdir()
    assert run(photo, "-o", out, "--sigma", "10").exit_code == 0
    assert read_image(out / "photo.png").size == (35, 27)
    assert run(photo, "-o", f"{out}/", "--sigma", "10", "--format", "webp").exit_code == 0
    assert read_image(out / "photo.webp").format == "WEBP"
    assert run(photo, "-o", f"{tmp_path / 'missing'}/", "--sigma", "10").exit_code == 0   # made, as batch does
    assert (tmp_path / "missing" / "photo.png").is_file()
    one_line_error(run(photo, "-o", photo.parent, "--sigma", "10"), "refusing to overwrite")


def test_format_must_agree_with_a_file_suffix(run, photo, tmp_path, one_line_error):
    one_line_error(run(photo, "-o", tmp_path / "x.png", "--format", "jpg", "--sigma", "5"), "--format says JPEG")


def test_quality_sets_jpeg_and_webp_compression(run, photo, tmp_path, one_line_error):
    sizes = {}
    for suffix, quality in ((".jpg", 20), (".jpg", 95), (".webp", 20), (".webp", None)):
        out = tmp_path / f"q{quality}{suffix}"
        extra = ["--quality", quality] if quality else []
        result = run(photo, "-o", out, "--sigma", "10", *extra)
        assert result.exit_code == 0, result.output
        sizes[(suffix, quality)] = out.stat().st_size
    assert sizes[(".jpg", 20)] < sizes[(".jpg", 95)]
    assert sizes[(".webp", 20)] < sizes[(".webp", None)]  # no --quality: lossless WebP
    one_line_error(run(photo, "-o", tmp_path / "x.png", "--quality", "50", "--sigma", "5"), "--quality")


@pytest.mark.parametrize("suffix", [".webp", ".bmp"])
def test_webp_and_bmp_in_and_out(run, tmp_path, suffix):
    src = tmp_path / f"in{suffix}"
    Image.fromarray(noisy()).save(src, **({"lossless": True} if suffix == ".webp" else {}))
    assert read_image(src).format == suffix[1:].upper()
    out = tmp_path / f"out{suffix}"
    result = run(src, "-o", out, "--sigma", "10")
    assert result.exit_code == 0, result.output
    restored = read_image(out)
    assert restored.format == suffix[1:].upper() and restored.size == (35, 27)


def test_stdout_to_a_terminal_is_refused_in_one_line(photo, tmp_path):
    """A real pseudo-terminal on stdout: one error line, no image bytes, non-zero exit."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "flowrt.cli.main", "restore", str(photo), "-o", "-"],
                              stdout=terminal, stderr=subprocess.PIPE, text=True, timeout=120)
        os.set_blocking(controller, False)
        try:
            shown = os.read(controller, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 1 and shown == b""
    assert proc.stderr.strip().splitlines() == [
        "Error: -o - writes image bytes to stdout, which is a terminal here; redirect it (> out.png) or give -o FILE"]


# ---------------------------------------------------------------- blind defaults, summary


def test_a_clean_png_is_written_unchanged_without_the_solver(run, tmp_path, map_runs):
    src = tmp_path / "clean.png"
    Image.fromarray(clean()).save(src)
    result = run(src, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert map_runs == []
    assert (tmp_path / "out.png").read_bytes() == src.read_bytes()
    line, = result.stderr.splitlines()
    assert "nothing to restore: estimated noise 0.0 < 2; pass --sigma S or --force to restore anyway" in line
    assert run(src, "-o", tmp_path / "as.webp").exit_code == 0  # another format: re-encoded, same pixels
    np.testing.assert_array_equal(read_image(tmp_path / "as.webp").rgb, read_image(src).rgb)
    assert map_runs == []


def test_a_clean_streamed_tiff_is_copied_without_the_solver(run, tmp_path, map_runs):
    import tifffile
    src = tmp_path / "clean.tif"
    tifffile.imwrite(src, clean(70, 90), tile=(32, 32))
    result = run(src, "-o", tmp_path / "out.tif", "--tile", "32", "-v")
    assert result.exit_code == 0, result.output
    assert map_runs == [] and "nothing to restore" in result.stderr
    assert (tmp_path / "out.tif").read_bytes() == src.read_bytes()


def test_force_restores_a_clean_png(run, tmp_path, map_runs):
    src = tmp_path / "clean.png"
    Image.fromarray(clean()).save(src)
    result = run(src, "-o", tmp_path / "out.png", "--force")
    assert result.exit_code == 0, result.output
    assert map_runs == [1] and "nothing to restore" not in result.stderr


def test_a_clean_jpeg_is_still_restored(run, tmp_path, map_runs):
    src = tmp_path / "clean.jpg"
    Image.fromarray(clean(32, 48)).save(src, quality=60)
    assert run(src, "-o", tmp_path / "out.png").exit_code == 0
    assert map_runs == [1]


def test_summary_line_after_a_restore_and_quiet(run, photo, tmp_path):
    result = run(photo, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    line, = result.stderr.splitlines()
    assert line.startswith(f"{photo} -> {tmp_path / 'out.png'}: noise sigma ") and "(estimated)" in line
    assert "then 2 flow-MAP iterations; engine " in line and " on cpu" in line and line.endswith(" s")
    quiet = run(photo, "-o", tmp_path / "out2.png", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_a_long_restore_off_a_terminal_logs_its_stages(run, photo, tmp_path, monkeypatch):
    """Off a terminal, a restore says where it is every LOG_EVERY_S seconds (here every step):
    the denoiser's stage, then the MAP's iterations, each with its own count."""
    monkeypatch.setenv("FLOWRT_PROGRESS_EVERY", "0")
    result = run(photo, "-o", tmp_path / "out.png", "--sigma", "12")
    assert result.exit_code == 0, result.output
    *steps, summary = result.stderr.splitlines()
    assert [line.split(": ", 1)[1].rsplit(",", 1)[0] for line in steps] == ["denoise 0/1", "denoise 1/1",
                                                                            "MAP 1/2", "MAP 2/2"]
    assert "flow denoiser, clipped noise mapped back, then 2 flow-MAP iterations" in summary


# ---------------------------------------------------------------- device and help


def test_device_spelling_and_missing_gpus_are_one_line(run, photo, tmp_path, one_line_error):
    import torch
    bad = run(photo, "-o", tmp_path / "o.png", "--sigma", "5", "--device", "gpu")
    assert bad.exit_code == 2 and "cuda:N" in bad.stderr and "Traceback" not in bad.output
    if torch.cuda.is_available():
        one_line_error(run(photo, "-o", tmp_path / "o.png", "--sigma", "5", "--device", "cuda:99"), "no such GPU")
    else:
        one_line_error(run(photo, "-o", tmp_path / "o.png", "--sigma", "5", "--device", "cuda:1"), "not available")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("command", ["restore", "batch"])
def test_help_shows_defaults(command):
    text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
    for shown in ("--iters INTEGER MAP iterations. [default: 10 after a split start, 20 after a denoised one, 150 otherwise]",
                  "[default: 0.5]", "[default: 0.6]",
                  "Random seed (0 to 2^63-1). [default: 0]", "[default: auto]", "auto|cpu|cuda|cuda:N",
                  "--space [image|latent]", "--format [png|tif|jpg|webp|bmp]", "--quality"):
        assert shown in text, shown


def test_restore_help_has_examples():
    text = CliRunner().invoke(cli, ["restore", "--help"]).output
    assert "Examples:" in text and "flowrt restore noisy.png -o out/ --sigma 25" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal_one_per_stage(monkeypatch):
    """On a terminal each phase gets its own bar (its total from the first frame, kept on screen), so
    the denoiser's time never counts as MAP steps; off a terminal nothing is drawn."""
    from flowrt.cli.progress import stage_bars
    monkeypatch.setattr(sys, "stderr", _Terminal())
    update, close = stage_bars("a.png")
    update("denoise", 0, 1)
    assert "denoise" in sys.stderr.getvalue() and "0/1" in sys.stderr.getvalue()
    update("denoise", 1, 1)
    for i in range(1, 4):
        update("MAP", i, 3)
    close()
    shown = sys.stderr.getvalue()
    assert "denoise: 100%" in shown and "MAP: 100%" in shown and "3/3" in shown.rsplit("\r", 1)[-1]
    assert shown.endswith("\n")   # kept on screen
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    update, close = stage_bars("a.png")
    update("MAP", 1, 3)     # FLOWRT_PROGRESS_EVERY is inf under the tests: silent
    close()
    assert sys.stderr.getvalue() == ""


def test_a_resumed_tiled_restores_eta_counts_only_its_own_tiles(monkeypatch):
    """Off a terminal: the tiles an interrupted run left done (the first call) are not work of this
    run; 10 s a tile now, 920 tiles to go -> an ETA of 9200 s, not one shrunk by the 305 done before."""
    from flowrt.cli import progress
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    on_tile, _, close = progress.tile_bar(1225, [("denoise", 1)], log_every=0)
    now[0] += 50           # opening the prior and the source, before any tile
    on_tile(304, 1225)     # what the earlier run finished: silent
    assert sys.stderr.getvalue() == ""
    now[0] += 10
    on_tile(305, 1225)
    close()
    assert sys.stderr.getvalue().strip() == "tile 305/1225, 10 s, ETA 9200 s"
