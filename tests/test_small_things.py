"""The small things of issue 24 (build point 9): each a behaviour users of other restorers expect."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from PIL import Image

FAST = ("--start", "blur", "--iters", "1")


def _save(path, array):
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def clean(tmp_path):
    yy, xx = np.mgrid[0:40, 0:48]
    return _save(tmp_path / "clean.png", (128 + 60 * np.sin(xx / 5 + yy / 7))[..., None].repeat(3, 2).astype(np.uint8))


@pytest.fixture
def noisy(tmp_path):
    yy, xx = np.mgrid[0:40, 0:48]
    img = (128 + 60 * np.sin(xx / 5 + yy / 7))[..., None] + np.random.default_rng(0).normal(0, 25, (40, 48, 3))
    return _save(tmp_path / "noisy.png", np.clip(img, 0, 255).astype(np.uint8))


def test_output_folder_is_created(noisy, tmp_path, tiny_prior, invoke_flowrt):
    result = invoke_flowrt("restore", noisy, "-o", f"{tmp_path}/made/here/", "--sigma", "20", "--model",
                           tiny_prior, *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "made" / "here" / "noisy.png").is_file()


def test_a_folder_as_input_suggests_batch(tmp_path, invoke_flowrt, one_line_error):
    (tmp_path / "photos").mkdir()
    assert "flowrt batch" in one_line_error(invoke_flowrt("restore", tmp_path / "photos", "-o", tmp_path / "o.png"),
                                            "is a folder")


@pytest.mark.parametrize("which, sigma, words", [("clean", "255", "over-smoothed"), ("noisy", "0", "left noisy")])
def test_a_sigma_far_from_the_estimate_is_warned_about(which, sigma, words, clean, noisy, tmp_path, caplog):
    from flowrt.pipeline.options import RestoreOptions
    from flowrt.pipeline.run import prepare_restore
    src = clean if which == "clean" else noisy
    with caplog.at_level(logging.WARNING, logger="flowrt"):
        job = prepare_restore(str(src), str(tmp_path / "o.png"), RestoreOptions(sigma=float(sigma)))
        job.source.close()
    assert any(words in r.getMessage() and f"--sigma {sigma}" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowrt"):   # a sigma near the estimate: no warning
        prepare_restore(str(noisy), str(tmp_path / "o.png"), RestoreOptions(sigma=25.0)).source.close()
    assert not caplog.records


def test_compare_against_a_reference_gives_psnr_and_ssim(clean, noisy, tmp_path, invoke_flowrt):
    from skimage.metrics import structural_similarity
    result = invoke_flowrt("compare", noisy, clean, "-o", tmp_path / "page.html", "--no-maps", "--reference", clean)
    assert result.exit_code == 0, result.output
    a, b = np.asarray(Image.open(clean)) / 255.0, np.asarray(Image.open(noisy)) / 255.0
    expected = structural_similarity(a, b, data_range=1.0, channel_axis=-1)
    assert f"before {10 * np.log10(1 / np.mean((a - b) ** 2)):.2f} dB, SSIM {expected:.4f}" in result.output
    assert "after inf dB, SSIM 1.0000" in result.output
    assert "SSIM" in (tmp_path / "page.html").read_text()


def test_train_help_shows_the_configs_defaults(invoke_flowrt):
    from cli.train_cmd import SHOWN_DEFAULTS
    from flowrt.train.config import TrainConfig
    cfg = TrainConfig()
    for name, shown in SHOWN_DEFAULTS.items():
        section, key = name.split("__")
        assert str(getattr(getattr(cfg, section), key)) == shown, name
    text = invoke_flowrt("train", "--help").output
    assert "[default: (16)" in " ".join(text.split()) and "[default: (20000)" in " ".join(text.split())


def test_score_device_has_help_and_sizes_are_width_by_height(invoke_flowrt, tmp_path):
    assert "Where the prior runs" in invoke_flowrt("score", "--help").output
    from flowrt.prior.scoring import Score, crop_note
    fields = {f.name: None for f in dataclasses.fields(Score)}
    fields.update(dequant="uniform", bit_depth=8, height=30, width=50, scored_height=24, scored_width=48)
    note = " ".join(crop_note(Score(**fields), 8))
    assert "centre-cropped 50x30 to 48x24" in note


def test_a_symlink_loop_is_reported_as_one(tmp_path, invoke_flowrt, one_line_error):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    one_line_error(invoke_flowrt("restore", tmp_path / "a.png", "-o", tmp_path / "o.png"), "symbolic link loop")


def test_newlines_in_names_are_escaped(noisy, tmp_path, invoke_flowrt, one_line_error):
    odd = tmp_path / "a\nb.png"
    odd.write_bytes(b"not an image")
    line = one_line_error(invoke_flowrt("restore", odd, "-o", tmp_path / "o.png"), "a\\nb.png")
    assert "\n" not in line


def test_float16_arrays_come_back_as_float16(tiny_prior):
    import flowrt
    img = (np.random.default_rng(0).random((20, 24, 3)) * 0.5 + 0.25).astype(np.float16)
    result = flowrt.restore(img, sigma=20, model=tiny_prior, iters=1, start="blur")
    assert result.image.dtype == np.float16 and result.image.shape == img.shape
