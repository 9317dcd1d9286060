"""``flowrt batch`` end to end: good images restored, a corrupt one reported and skipped (exit 1,
no output for it), ``--recursive`` keeping the folder structure, ``--skip-existing`` resuming,
and clear errors for an empty or overlapping folder. In-process, tiny prior, ``--iters 2``.
"""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowrt.cli.main import cli
from flowrt.io.image_file import read_image


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (h, w, 3): smooth ramps plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    img = np.stack([0.2 + 0.6 * (a * yy + (1 - a) * xx) for a in rng.uniform(0, 1, 3)], axis=2)
    return np.round(np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def photos(tmp_path) -> Path:
    """in/ with good.png (37x29), good.jpg (40x24), a truncated bad.png, notes.txt, and
    sub/deep.tif (33x21) plus sub/deeper/grey.png (19x27) for --recursive."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(photo(29, 37, 0)).save(root / "good.png")
    Image.fromarray(photo(24, 40, 1)).save(root / "good.jpg", quality=50)
    data = (root / "good.png").read_bytes()
    (root / "bad.png").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not an image, and not looked at")
    Image.fromarray(photo(21, 33, 2)).save(root / "sub" / "deep.tif")
    Image.fromarray(photo(27, 19, 3)[..., 0]).save(root / "sub" / "deeper" / "grey.png")
    return root


@pytest.fixture
def batch(tiny_prior):
    """Invoke ``flowrt batch ARGS --model tiny --iters 2`` in-process; returns click's Result."""
    def invoke(*args):
        argv = ["batch", *map(str, args), "--model", str(tiny_prior), "--iters", "2", "--sigma", "5"]
        return CliRunner().invoke(cli, argv)
    return invoke


@pytest.fixture
def count_map_runs(monkeypatch) -> list:
    """Record the size of every image the MAP solver is run on."""
    import flowrt.solve.solver
    calls, real = [], flowrt.solve.solver.map_restore

    def counting(prior, fm, *args, **kwargs):
        calls.append(fm.restored_size)
        return real(prior, fm, *args, **kwargs)
    monkeypatch.setattr(flowrt.solve.solver, "map_restore", counting)
    return calls


def files(folder: Path) -> set:
    """Relative paths of every file under folder (hidden temp files included)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_good_images_restored_and_a_corrupt_one_reported(photos, batch, tmp_path):
    out = tmp_path / "out"
    result = batch(photos, "-o", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "bad.png" in failed[0] and "truncated" in failed[0]
    assert "restored 2 image(s), 1 failed" in result.stderr
    # nothing for bad.png, no temp files, no sub/; the JPEG is written losslessly, next to good.png
    assert files(out) == {"good.png", "good.jpg.png"}
    assert "1 JPEG/WebP input(s) written as PNG, lossless" in result.stderr
    for name, written in (("good.png", "good.png"), ("good.jpg", "good.jpg.png")):
        src, dst = read_image(photos / name), read_image(out / written)
        assert dst.size == src.size and dst.format == "PNG" and np.isfinite(dst.rgb).all()


def test_recursive_keeps_the_folder_structure(photos, batch, tmp_path):
    out = tmp_path / "out"
    result = batch(photos, "-o", out, "--recursive")
    assert result.exit_code == 1
    assert files(out) == {"good.png", "good.jpg.png", "sub/deep.tif", "sub/deeper/grey.png"}
    assert read_image(out / "sub" / "deeper" / "grey.png").mode == "L"
    assert read_image(out / "sub" / "deep.tif").format == "TIFF"


def test_skip_existing_does_not_redo_finished_images(photos, batch, tmp_path, count_map_runs):
    out = tmp_path / "out"
    assert batch(photos, "-o", out).exit_code == 1
    assert len(count_map_runs) == 2
    stamp = {name: (out / name).stat().st_mtime_ns for name in ("good.png", "good.jpg.png")}
    result = batch(photos, "-o", out, "--recursive", "--skip-existing")
    assert result.exit_code == 1  # bad.png fails again
    assert "restored 2 image(s), skipped 2 already done, 1 failed" in result.stderr
    assert sorted(count_map_runs[2:]) == [(21, 33), (27, 19)]  # only the two new ones ran
    assert all((out / name).stat().st_mtime_ns == t for name, t in stamp.items())


def test_all_good_exits_zero(photos, batch, tmp_path):
    (photos / "bad.png").unlink()
    result = batch(photos, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("restored 2 image(s); 1 JPEG/WebP input(s)")


def test_an_unexpected_error_on_one_image_does_not_stop_the_batch(photos, batch, tmp_path, monkeypatch):
    import flowrt.pipeline.region
    real = flowrt.pipeline.region.restore_loaded

    def crash_on_jpeg(image, *args, **kwargs):
        if image.format == "JPEG":
            raise RuntimeError("simulated crash")
        return real(image, *args, **kwargs)
    monkeypatch.setattr(flowrt.pipeline.region, "restore_loaded", crash_on_jpeg)
    (photos / "bad.png").unlink()
    result = batch(photos, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "good.jpg: internal error (RuntimeError: simulated crash)" in result.stderr
    assert files(tmp_path / "out") == {"good.png"}


def test_empty_folder_is_a_clear_error(batch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    result = batch(empty, "-o", tmp_path / "out")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: no PNG, JPEG, TIFF, WebP or BMP images in {empty} (try --recursive)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["same", "file"])
def test_output_that_cannot_be_a_folder_is_refused(where, photos, batch, tmp_path):
    out = photos if where == "same" else photos / "good.png"
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    result = batch(photos, "-o", out)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert sum(line.startswith("Error:") for line in result.stderr.splitlines()) == 1
    assert {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()} == before


def test_missing_input_folder_is_a_usage_error(batch, tmp_path):
    result = batch(tmp_path / "nowhere", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "does not exist" in result.stderr


def test_one_line_per_image_when_piped(photos, batch, tmp_path):
    (photos / "bad.png").unlink()
    result = batch(photos, "-o", tmp_path / "out")
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr  # no bars: a line per image, then the summary
    assert re.fullmatch(r"\[1/2\] good\.jpg: \d+\.\d s", lines[0]), lines[0]
    assert re.fullmatch(r"\[2/2\] good\.png: \d+\.\d s", lines[1]), lines[1]
    assert lines[2].startswith("restored 2 image(s)")


def test_quiet_batch_says_only_the_summary(photos, batch, tmp_path):
    (photos / "bad.png").unlink()
    result = batch(photos, "-o", tmp_path / "out", "-q")
    assert result.exit_code == 0 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("restored 2 image(s)")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal_show_totals_at_once_and_stay(monkeypatch):
    from flowrt.cli.progress import batch_progress
    monkeypatch.setattr(sys, "stderr", _Terminal())
    progress = batch_progress(2, quiet=False)
    first = sys.stderr.getvalue()
    assert "0/2" in first and "?img/s]" in first and "0it" not in first
    progress.step("denoise", 1, 1)
    progress.step("MAP", 3, 3)
    assert "MAP: 100%" in sys.stderr.getvalue() and "3/3" in sys.stderr.getvalue()  # one stage at a time
    progress.image_done(1, 2, "a.png", 1.0, "")
    progress.image_done(2, 2, "b.png", 1.0, "")
    progress.close()
    shown = sys.stderr.getvalue()
    assert shown.endswith("\n") and "images: 100%" in shown.rsplit("\r", 1)[-1]  # the last frame stays
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert batch_progress(2, quiet=False).step is None


def test_format_and_quality_choose_the_output_files(photos, batch, tmp_path):
    (photos / "bad.png").unlink()
    out = tmp_path / "out"
    result = batch(photos, "-o", out, "--format", "webp", "--quality", "80")
    assert result.exit_code == 0, result.output
    assert files(out) == {"good.png.webp", "good.jpg.webp"}
    assert "written as PNG" not in result.stderr
    assert read_image(out / "good.png.webp").format == "WEBP"


def test_format_jpg_keeps_a_jpeg_input_a_jpeg(photos, batch, tmp_path):
    (photos / "bad.png").unlink()
    (photos / "good.png").unlink()
    out = tmp_path / "out"
    assert batch(photos, "-o", out, "--format", "jpg").exit_code == 0
    assert files(out) == {"good.jpg"} and read_image(out / "good.jpg").format == "JPEG"


def test_a_clean_image_in_a_batch_is_written_unchanged(tmp_path, tiny_prior, count_map_runs):
    folder = tmp_path / "in"
    folder.mkdir()
    smooth = np.round(np.linspace(60, 190, 30 * 40).reshape(30, 40)).astype(np.uint8)
    Image.fromarray(np.stack([smooth] * 3, axis=2)).save(folder / "clean.png")
    result = CliRunner().invoke(cli, ["batch", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_prior)])
    assert result.exit_code == 0, result.output
    assert count_map_runs == []
    assert (tmp_path / "out" / "clean.png").read_bytes() == (folder / "clean.png").read_bytes()
    assert "clean, written unchanged" in result.stderr
