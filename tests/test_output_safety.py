"""Output safety (issue 24, build point 5): only regular files or new names are replaced; an
overwritten output keeps its mode; --skip-existing recognises every format flowrt writes."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from flowrt.io.complete import is_complete_image

FAST = ("--sigma", "20", "--start", "blur", "--iters", "1")


@pytest.fixture
def noisy(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "n.png"
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("target", ["device", "link to a device", "fifo"])
def test_a_device_fifo_or_link_to_one_is_never_replaced(noisy, tmp_path, tiny_prior, invoke_flowrt, one_line_error,
                                                         target):
    out = tmp_path / "out.png"
    if target == "fifo":
        os.mkfifo(out)
    else:
        out.symlink_to("/dev/null" if target == "device" else "/dev/full")
    for tiling in (("--tile", "0"), ("--tile", "16", "--overlap", "4")):
        one_line_error(invoke_flowrt("restore", noisy, "-o", out, "--model", tiny_prior, *FAST, *tiling),
                       "not a regular file")
    assert out.is_symlink() or stat.S_ISFIFO(os.lstat(out).st_mode)


def test_an_overwritten_output_keeps_its_mode(noisy, tmp_path, tiny_prior, invoke_flowrt):
    import tifffile
    streamed_in = tmp_path / "n.tif"
    tifffile.imwrite(streamed_in, np.asarray(Image.open(noisy)), photometric="rgb", tile=(16, 16))
    for source, suffix, tiling in ((noisy, ".png", ("--tile", "0")), (noisy, ".png", ("--tile", "16", "--overlap", "4")),
                                   (streamed_in, ".tif", ("--tile", "16", "--overlap", "4"))):
        out = tmp_path / f"out{len(tiling)}{suffix}"
        out.write_bytes(b"old")
        os.chmod(out, 0o600)
        result = invoke_flowrt("restore", source, "-o", out, "--model", tiny_prior, *FAST, *tiling)
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600 and is_complete_image(out)


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".png", ".jpg", ".tif"])
def test_skip_existing_recognises_every_format_flowrt_writes(tmp_path, tiny_prior, invoke_flowrt, suffix):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / "a.png")
    fmt = suffix.lstrip(".")
    first = invoke_flowrt("batch", folder, "-o", tmp_path / "out", "--model", tiny_prior, *FAST, "--format", fmt)
    assert first.exit_code == 0, first.output
    assert is_complete_image(tmp_path / "out" / f"a{suffix}")
    again = invoke_flowrt("batch", folder, "-o", tmp_path / "out", "--model", tiny_prior, *FAST, "--format", fmt,
                          "--skip-existing")
    assert "skipped 1 already done" in again.output, again.output
    damaged = tmp_path / "out" / f"a{suffix}"
    damaged.write_bytes(damaged.read_bytes()[:-16])
    assert not is_complete_image(damaged)
