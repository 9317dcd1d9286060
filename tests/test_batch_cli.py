"""``flowrt batch`` end to end: good images restored, a corrupt one reported and skipped (exit 1,
no output for it), ``--recursive`` keeping the folder structure, ``--skip-existing`` resuming,
and clear errors for an empty or overlapping folder. In-process, tiny prior, ``--iters 2``.
"""
from __future__ import annotations

import io
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
    assert files(out) == {"good.png", "good.jpg"}  # nothing for bad.png, no temp files, no sub/
    for name in ("good.png", "good.jpg"):
        src, dst = read_image(photos / name), read_image(out / name)
        assert dst.size == src.size and dst.format == src.format and np.isfinite(dst.rgb).all()


def test_recursive_keeps_the_folder_structure(photos, batch, tmp_path):
    out = tmp_path / "out"
    result = batch(photos, "-o", out, "--recursive")
    assert result.exit_code == 1
    assert files(out) == {"good.png", "good.jpg", "sub/deep.tif", "sub/deeper/grey.png"}
    assert read_image(out / "sub" / "deeper" / "grey.png").mode == "L"
    assert read_image(out / "sub" / "deep.tif").format == "TIFF"


def test_skip_existing_does_not_redo_finished_images(photos, batch, tmp_path, count_map_runs):
    out = tmp_path / "out"
    assert batch(photos, "-o", out).exit_code == 1
    assert len(count_map_runs) == 2
    stamp = {name: (out / name).stat().st_mtime_ns for name in ("good.png", "good.jpg")}
    result = batch(photos, "-o", out, "--recursive", "--skip-existing")
    assert result.exit_code == 1  # bad.png fails again
    assert "restored 2 image(s), skipped 2 already done, 1 failed" in result.stderr
    assert sorted(count_map_runs[2:]) == [(21, 33), (27, 19)]  # only the two new ones ran
    assert all((out / name).stat().st_mtime_ns == t for name, t in stamp.items())


def test_all_good_exits_zero(photos, batch, tmp_path):
    (photos / "bad.png").unlink()
    result = batch(photos, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "restored 2 image(s)"


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
        f"Error: no PNG, JPEG or TIFF images in {empty} (try --recursive)"]
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


def test_no_progress_bars_when_piped(photos, batch, tmp_path):
    (photos / "bad.png").unlink()
    result = batch(photos, "-o", tmp_path / "out")
    assert result.stderr == "restored 2 image(s)\n"  # the summary and nothing else


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal(monkeypatch):
    from flowrt.pipeline.batch import _bars
    monkeypatch.setattr(sys, "stderr", _Terminal())
    advance, iterations = _bars(2)
    iterations(1, 2)
    advance(1)
    advance(None)
    shown = sys.stderr.getvalue()
    assert "images" in shown and "MAP" in shown
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    advance, iterations = _bars(2)
    assert iterations is None
    advance(1)
    advance(None)
