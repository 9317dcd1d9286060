"""``flowrt restore`` end to end: every operator and chain, stdin/stdout, the image kinds users
have (16-bit PNG/TIFF, RGBA, grey), and bad input (one line, non-zero exit, nothing written).

Runs the click command in this process with a tiny exported prior (``tiny_prior`` in conftest)
and ``--iters 3``; images are small, odd-sized and made here from fixed seeds.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowrt.cli.main import cli
from flowrt.io.image_file import read_image

H, W = 29, 37          # the main test image: odd on both sides
H2, W2 = 24, 40        # a second shape, even but not a multiple of the prior's 4


def photo(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """float (h, w, channels) in [0, 1]: smooth colour ramps plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    planes = [0.2 + 0.6 * (a * yy + (1 - a) * xx) for a in rng.uniform(0, 1, channels)]
    return np.clip(np.stack(planes, axis=2) + rng.normal(0, 0.03, (h, w, channels)), 0, 1)


def save8(path: Path, img: np.ndarray, **kw) -> Path:
    arr = np.round(img * 255).astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode).save(path, **kw)
    return path


@pytest.fixture
def images(tmp_path) -> dict:
    """The inputs most tests use: a PNG, a JPEG (quality 40), a kernel and a mask, in tmp_path."""
    folder = tmp_path / "in"
    folder.mkdir()
    mask = np.zeros((H, W), np.uint8)
    mask[10:15, 12:19] = 255  # white = missing: 5 x 7 = 35 pixels
    Image.fromarray(mask).save(folder / "mask.png")
    np.save(folder / "kernel.npy", np.ones((3, 5)) / 15.0)
    return {"png": save8(folder / "a.png", photo(H, W, 1)), "jpg": save8(folder / "b.jpg", photo(H2, W2, 2), quality=40),
            "mask": folder / "mask.png", "kernel": folder / "kernel.npy"}


@pytest.fixture
def restore(tiny_prior):
    """Invoke ``flowrt restore ARGS --iters 3 [--model tiny]`` in-process; returns click's Result."""
    def invoke(*args, input=None, iters: int = 3):
        argv = ["restore", *map(str, args), "--iters", str(iters)]
        if "--model" not in argv:  # click keeps the last value: a test's own --model must win
            argv += ["--model", str(tiny_prior)]
        return CliRunner().invoke(cli, argv, input=input)
    return invoke


def assert_ok(result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def assert_user_error(result, fragment: str) -> None:
    """Non-zero exit, no traceback, and exactly one 'Error:' line that contains ``fragment``."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert fragment.lower() in errors[0].lower(), errors[0]
    assert result.stdout_bytes == b""


def listing(folder: Path) -> set:
    """Every file under folder, hidden temp files included."""
    return {p.relative_to(folder) for p in folder.rglob("*")}


# ---------------------------------------------------------------- operators and chains

# (input key, options, size factor, fragments the -v line must hold)
CASES = {
    "noise": ("png", ["--sigma", "10"], 1, ["noise sigma 10.0 (given)", "no JPEG term"]),
    "jpeg_auto": ("jpg", [], 1, ["JPEG data term from the file's own tables"]),
    "jpeg_quality_on_png": ("png", ["--jpeg", "30"], 1, ["JPEG data term from quality 30"]),
    "jpeg_off_on_jpeg": ("jpg", ["--jpeg", "off", "--sigma", "3"], 1, ["no JPEG term"]),
    "blur_gaussian": ("png", ["--blur", "gaussian:1.5", "--sigma", "2"], 1, ["deblur with a 11x11 kernel"]),
    "blur_npy": ("png", ["--blur", "{kernel}", "--sigma", "2"], 1, ["deblur with a 5x3 kernel"]),
    "scale": ("png", ["--scale", "2", "--sigma", "5"], 2, ["x2 super-resolution"]),
    "mask": ("png", ["--mask", "{mask}"], 1, ["inpaint 35 missing pixels"]),
    "chain_on_jpeg": ("jpg", ["--blur", "gaussian:1", "--scale", "2", "--sigma", "5"], 2,
                      ["noise sigma 5.0", "JPEG data term from the file's own tables", "x2 super-resolution",
                       "deblur with a 7x7 kernel"]),
    "latent": ("png", ["--space", "latent", "--sigma", "10"], 1, ["3 flow-MAP iterations in latent space; engine torch"]),
    "image": ("png", ["--space", "image", "--sigma", "10"], 1, ["3 flow-MAP iterations; engine"]),
    "sigma_auto": ("png", ["--sigma", "auto"], 1, ["estimated"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_operator_and_chain_restores_to_the_right_size(case, images, restore, tmp_path):
    key, options, factor, fragments = CASES[case]
    options = [o.format(**images) for o in options]
    out = tmp_path / "out.png"
    result = restore(images[key], "-o", out, "-v", *options)
    assert_ok(result)
    said = result.stderr
    for fragment in fragments:
        assert fragment in said, said
    src, restored = read_image(images[key]), read_image(out)
    assert restored.size == (src.size[0] * factor, src.size[1] * factor)
    assert restored.mode == "RGB" and restored.bit_depth == 8
    assert np.isfinite(restored.rgb).all()
    assert f"wrote {out}" in said


def test_sigma_auto_reports_the_estimate_it_used(images, restore, tmp_path):
    noisy = photo(H, W, 5) + np.random.default_rng(5).normal(0, 20 / 255, (H, W, 3))
    path = save8(tmp_path / "noisy.png", np.clip(noisy, 0, 1))
    result = restore(path, "-o", tmp_path / "out.png", "-v")
    assert_ok(result)
    line = next(line for line in result.stderr.splitlines() if "noise sigma" in line)
    estimate = float(line.split("noise sigma ", 1)[1].split()[0])
    assert 12 < estimate < 28 and "(estimated)" in line


def test_restoration_changes_the_image_but_keeps_it_close(images, restore, tmp_path):
    out = tmp_path / "out.png"
    assert_ok(restore(images["png"], "-o", out, "--sigma", "10", iters=5))
    before, after = read_image(images["png"]).rgb, read_image(out).rgb
    assert not np.array_equal(before, after)
    assert np.abs(before - after).mean() < 0.1


# ---------------------------------------------------------------- stdin / stdout


def test_stdin_to_stdout_in_process(images, restore):
    data = images["jpg"].read_bytes()
    result = restore("-", "-o", "-", input=data)
    assert_ok(result)
    out = Image.open(io.BytesIO(result.stdout_bytes))
    assert out.format == "PNG" and out.size == (W2, H2) and out.mode == "RGB"


def test_stdin_to_stdout_through_a_real_pipe(images, tiny_prior):
    """A child process: stdout must carry the PNG and nothing else (no logs, no progress bar)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "flowrt.cli.main", "restore", "-", "-o", "-", "--model",
                           str(tiny_prior), "--iters", "2", "-v"], input=images["jpg"].read_bytes(),
                          capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(proc.stdout)).size == (W2, H2)
    assert b"<stdin>" in proc.stderr and b"Traceback" not in proc.stderr


def test_empty_stdin_is_one_clear_error(restore, tmp_path):
    result = restore("-", "-o", tmp_path / "out.png", input=b"")
    assert_user_error(result, "empty")
    assert not (tmp_path / "out.png").exists()


# ---------------------------------------------------------------- image kinds


def _write16(path: Path, img: np.ndarray) -> Path:
    samples = np.round(img * 65535).astype(np.uint16)
    if path.suffix == ".tif":
        import tifffile
        tifffile.imwrite(path, samples)
    else:
        from flowrt.io.png16 import encode_png16
        path.write_bytes(encode_png16(samples, None, None))
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_input_stays_16_bit_unless_asked(suffix, restore, tmp_path):
    src = _write16(tmp_path / f"deep{suffix}", photo(H2, W2, 3))
    assert read_image(src).bit_depth == 16
    out16, out8 = tmp_path / f"out{suffix}", tmp_path / f"out8{suffix}"
    assert_ok(restore(src, "-o", out16, "--sigma", "3"))
    assert_ok(restore(src, "-o", out8, "--sigma", "3", "--bit-depth", "8"))
    deep, shallow = read_image(out16), read_image(out8)
    assert deep.bit_depth == 16 and deep.size == (W2, H2) and deep.format == read_image(src).format
    assert shallow.bit_depth == 8 and shallow.size == (W2, H2)
    # the 8-bit output is the 16-bit one rounded to 8 bits (same seed, same MAP)
    assert np.abs(deep.rgb - shallow.rgb).max() <= 0.5 / 255 + 1e-6


def test_rgba_alpha_is_passed_through_unchanged(restore, tmp_path):
    rgba = photo(H, W, 4, channels=4)
    rgba[..., 3] = np.linspace(0, 1, W)[None, :]  # a real gradient of transparency
    src = save8(tmp_path / "rgba.png", rgba)
    out = tmp_path / "out.png"
    assert_ok(restore(src, "-o", out, "--sigma", "5"))
    before, after = Image.open(src), Image.open(out)
    assert after.mode == "RGBA"
    assert np.array_equal(np.asarray(before)[..., 3], np.asarray(after)[..., 3])


def test_rgba_with_scale_gets_an_alpha_of_the_output_size(restore, tmp_path):
    src = save8(tmp_path / "rgba.png", photo(H, W, 6, channels=4))
    out = tmp_path / "out.png"
    assert_ok(restore(src, "-o", out, "--scale", "2", "--sigma", "5"))
    restored = read_image(out)
    assert restored.size == (2 * W, 2 * H) and restored.alpha is not None
    assert restored.alpha.shape == (2 * H, 2 * W)


def test_greyscale_stays_greyscale(restore, tmp_path):
    src = save8(tmp_path / "grey.png", photo(H, W, 7, channels=1))
    out = tmp_path / "out.png"
    assert_ok(restore(src, "-o", out, "--sigma", "5"))
    assert Image.open(out).mode == "L"
    assert read_image(out).mode == "L"


def test_jpeg_output_for_a_jpeg_input(images, restore, tmp_path):
    out = tmp_path / "out.jpg"
    assert_ok(restore(images["jpg"], "-o", out))
    assert read_image(out).format == "JPEG"


# ---------------------------------------------------------------- bad input


def _truncated(tmp_path, images):
    data = images["png"].read_bytes()
    path = tmp_path / "in" / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return [path, "-o", tmp_path / "out.png"], "truncated"


def _header_only(tmp_path, images):
    path = tmp_path / "in" / "header.png"
    path.write_bytes(images["png"].read_bytes()[:30])
    return [path, "-o", tmp_path / "out.png"], "header.png"


def _zero_size(tmp_path, images):
    path = tmp_path / "in" / "zero.png"
    path.write_bytes(b"")
    return [path, "-o", tmp_path / "out.png"], "empty"


def _not_an_image(tmp_path, images):
    path = tmp_path / "in" / "notes.png"
    path.write_text("hello")
    return [path, "-o", tmp_path / "out.png"], "not a PNG, TIFF, JPEG, WebP or BMP"


def _missing(tmp_path, images):
    return [tmp_path / "in" / "nothere.png", "-o", tmp_path / "out.png"], "no such file"


def _mask_wrong_size(tmp_path, images):
    path = tmp_path / "in" / "small_mask.png"
    Image.fromarray(np.zeros((H - 1, W), np.uint8)).save(path)
    return [images["png"], "-o", tmp_path / "out.png", "--mask", path], "the mask is"


def _mask_hides_everything(tmp_path, images):
    path = tmp_path / "in" / "white.png"
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(path)
    return [images["png"], "-o", tmp_path / "out.png", "--mask", path], "hides every pixel"


def _unknown_model(tmp_path, images):
    return [images["png"], "-o", tmp_path / "out.png", "--model", tmp_path / "no_such_model"], "model folder not found"


def _not_a_model(tmp_path, images):
    return [images["png"], "-o", tmp_path / "out.png", "--model", tmp_path / "in"], "not an exported flowrt prior"


def _negative_sigma(tmp_path, images):
    return [images["png"], "-o", tmp_path / "out.png", "--sigma", "-3"], "sigma"


def _huge_sigma(tmp_path, images):  # overflowed the data term into a traceback before
    return [images["png"], "-o", tmp_path / "out.png", "--sigma", "1e300"], "sigma"


def _nan_lambda(tmp_path, images):  # was accepted and silently fell back to the input
    return [images["png"], "-o", tmp_path / "out.png", "--lam", "nan"], "--lam"


def _nan_coarse_prior(tmp_path, images):
    return [images["png"], "-o", tmp_path / "out.png", "--scale", "2", "--coarse-prior", "nan"], "--coarse-prior"


def _jpeg_quality_on_jpeg(tmp_path, images):
    return [images["jpg"], "-o", tmp_path / "out.png", "--jpeg", "50"], "its own tables"


def _bad_blur(tmp_path, images):
    return [images["png"], "-o", tmp_path / "out.png", "--blur", "gaussian:wide"], "blur spec"


def _output_into_missing_folder(tmp_path, images):
    return [images["png"], "-o", tmp_path / "nowhere" / "out.png"], "does not exist"


def _unknown_output_suffix(tmp_path, images):
    return [images["png"], "-o", tmp_path / "out.gif"], "output format"


def _alpha_into_jpeg(tmp_path, images):
    src = save8(tmp_path / "in" / "rgba.png", photo(H, W, 8, channels=4))
    return [src, "-o", tmp_path / "out.jpg"], "alpha"


BAD_INPUTS = [_truncated, _header_only, _zero_size, _not_an_image, _missing, _mask_wrong_size,
              _mask_hides_everything, _unknown_model, _not_a_model, _negative_sigma, _huge_sigma, _nan_lambda,
              _nan_coarse_prior,
              _jpeg_quality_on_jpeg, _bad_blur, _output_into_missing_folder, _unknown_output_suffix, _alpha_into_jpeg]


@pytest.mark.parametrize("make", BAD_INPUTS, ids=lambda f: f.__name__.lstrip("_"))
def test_bad_input_is_one_line_and_leaves_no_output(make, images, restore, tmp_path):
    args, fragment = make(tmp_path, images)
    before = listing(tmp_path)
    result = restore(*args)
    assert_user_error(result, fragment)
    assert listing(tmp_path) == before, "a failed restore left a file behind"


@pytest.mark.parametrize("kind", ["png8", "png16", "tiff"])
def test_decompression_bomb_is_refused(kind, restore, tmp_path, monkeypatch):
    img = photo(H, W, 9)
    src = {"png8": lambda: save8(tmp_path / "bomb.png", img), "png16": lambda: _write16(tmp_path / "bomb.png", img),
           "tiff": lambda: _write16(tmp_path / "bomb.tif", img)}[kind]()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", H * W // 4)  # imageio reads Pillow's limit at call time
    before = listing(tmp_path)
    result = restore(src, "-o", tmp_path / "out.png")
    assert_user_error(result, "decompression-bomb")
    assert listing(tmp_path) == before


def test_output_equal_to_input_is_refused_and_input_unchanged(images, restore, tmp_path, monkeypatch):
    original = images["png"].read_bytes()
    via_symlink = tmp_path / "link.png"
    via_symlink.symlink_to(images["png"])
    for dest in (images["png"], tmp_path / "in" / ".." / "in" / "a.png", via_symlink):
        result = restore(images["png"], "-o", dest)
        assert_user_error(result, "refusing to overwrite the input")
    assert images["png"].read_bytes() == original


def test_a_bad_output_fails_before_the_map_run(images, restore, tmp_path, monkeypatch):
    """The output is checked right after reading: no minutes of MAP before 'folder does not exist'."""
    import flowrt.solve.solver

    def must_not_run(*args, **kwargs):
        raise AssertionError("map_restore ran although the output could not be written")
    monkeypatch.setattr(flowrt.solve.solver, "map_restore", must_not_run)
    assert_user_error(restore(images["png"], "-o", tmp_path / "nowhere" / "o.png"), "does not exist")
    assert_user_error(restore(images["png"], "-o", images["png"]), "refusing")


def test_unavailable_cuda_is_one_line(images, restore, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_user_error(restore(images["png"], "-o", tmp_path / "out.png", "--device", "cuda"), "CUDA")
    assert not (tmp_path / "out.png").exists()


# ---------------------------------------------------------------- progress bars


def test_no_progress_bar_when_stderr_is_not_a_terminal(images, restore, tmp_path):
    result = restore(images["png"], "-o", tmp_path / "out.png", "--sigma", "5")
    assert_ok(result)
    assert len(result.stderr.splitlines()) == 1, result.stderr  # the summary line, no bar
    assert "noise sigma 5.0 (given)" in result.stderr
