"""Streaming TIFF regions in, tiled BigTIFF out, and file-level tiled restore with resume."""
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from flowrt.errors import InputError
from flowrt.io.tiff_stream import TiffSink, TiffSource, is_tiff
from flowrt.pipeline.run import TilingOptions
from flowrt.pipeline.source import open_source
from flowrt.tiling.streamed import partial_paths, restore_into_file


def restore_file_tiled(in_path, out_path, restore_tile, *, tile, scale=1, **kwargs):
    """Open IN as the pipeline does (streamed TIFF to TIFF, else decoded) and restore it tile by tile."""
    with open_source(str(in_path), str(out_path), scale, TilingOptions(tile=tile)) as source:
        restore_into_file(source, out_path, restore_tile, tile=tile, scale=scale, **kwargs)

LAYOUTS = {
    "contiguous": dict(),
    "strips_deflate": dict(rowsperstrip=5, compression="zlib"),
    "tiles": dict(tile=(16, 32)),
    "bigtiff_tiles_predictor": dict(bigtiff=True, tile=(32, 16), compression="zlib", predictor=True),
    "big_endian": dict(byteorder=">", rowsperstrip=7),
}


def _image(rng, dtype, channels, shape=(45, 71)):
    top = np.iinfo(dtype).max
    return rng.integers(0, top + 1, shape + (channels,), dtype=dtype)


def _write(path, pixels, **kwargs):
    photometric = "rgb" if pixels.shape[2] >= 3 else "minisblack"
    extra = {"extrasamples": ["unassalpha"]} if pixels.shape[2] in (2, 4) else {}
    data = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    tifffile.imwrite(path, data, photometric=photometric, metadata=None, **extra, **kwargs)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype,channels", [(np.uint16, 3), (np.uint8, 1), (np.uint8, 4)])
def test_source_regions_match_whole_read(tmp_path, layout, dtype, channels):
    rng = np.random.default_rng(channels)
    pixels = _image(rng, dtype, channels)
    path = tmp_path / "in.tif"
    _write(path, pixels, **LAYOUTS[layout])
    assert is_tiff(path)
    with TiffSource(path, cache_bytes=1) as source:  # a tiny cache still reads correctly
        assert source.shape == pixels.shape and source.dtype == dtype
        for y0, y1, x0, x1 in [(0, 45, 0, 71), (3, 17, 30, 71), (40, 45, 0, 9), (12, 13, 5, 6)]:
            expected = pixels[y0:y1, x0:x1] / np.float32(np.iinfo(dtype).max)
            np.testing.assert_array_equal(source.read(y0, y1, x0, x1), expected)


def _identity(tile, box):
    return tile


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_16bit_and_8bit_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(4)
    pixels = _image(rng, np.uint16, 3 if suffix == ".tif" else 1, (53, 37))
    _write(tmp_path / "in.tif", pixels, rowsperstrip=4, compression="zlib")
    out = tmp_path / f"out{suffix}"
    restore_file_tiled(tmp_path / "in.tif", out, _identity, tile=16, overlap=8)
    result = tifffile.imread(out) if suffix == ".tif" else np.asarray(Image.open(out))
    np.testing.assert_array_equal(result.reshape(pixels.shape), pixels)
    assert sorted(os.listdir(tmp_path)) == ["in.tif", f"out{suffix}"]  # no leftovers
    if suffix == ".tif":
        with tifffile.TiffFile(out) as tif:
            assert tif.is_bigtiff and tif.pages.first.is_tiled


def test_grey_streams_as_rgb_and_comes_back_grey(tmp_path):
    pixels = _image(np.random.default_rng(8), np.uint16, 1, (33, 47))
    _write(tmp_path / "in.tif", pixels, rowsperstrip=3, compression="zlib")
    seen = []
    restore_file_tiled(tmp_path / "in.tif", tmp_path / "out.tif",
                       lambda t, b: seen.append(t.shape[2]) or t, tile=16, overlap=8)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), pixels[:, :, 0])
    assert set(seen) == {3}


def test_alpha_passes_through_and_scale(tmp_path):
    rng = np.random.default_rng(9)
    pixels = _image(rng, np.uint8, 4, (21, 30))
    _write(tmp_path / "in.tif", pixels)
    seen = []

    def upsample(tile, box):
        seen.append(tile.shape[2])
        return tile.repeat(2, 0).repeat(2, 1)

    restore_file_tiled(tmp_path / "in.tif", tmp_path / "out.tif", upsample, tile=32, overlap=8,
                       scale=2, align=16)
    result = tifffile.imread(tmp_path / "out.tif")
    np.testing.assert_array_equal(result, pixels.repeat(2, 0).repeat(2, 1))
    assert set(seen) == {3}  # restore_tile never sees alpha


def test_truncated_tiff_is_one_line_input_error(tmp_path):
    pixels = _image(np.random.default_rng(1), np.uint8, 3, (64, 64))
    path = tmp_path / "cut.tif"
    _write(path, pixels, rowsperstrip=8, compression="zlib")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated") as info:
        restore_file_tiled(path, tmp_path / "out.tif", _identity, tile=32, overlap=8)
    assert "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["cut.tif"]  # nothing written
    path.write_bytes(b"II*\0garbage")
    with pytest.raises(InputError, match="not a readable TIFF"):
        TiffSource(path)


def test_unsupported_tiffs_and_paths(tmp_path):
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.float32), photometric="rgb")
    with pytest.raises(InputError, match="8- and 16-bit"):
        TiffSource(path)
    ok = tmp_path / "ok.tif"
    _write(ok, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="overwrite"):
        restore_file_tiled(ok, ok, _identity, tile=16, overlap=4)
    with pytest.raises(InputError, match="overlap"):
        restore_file_tiled(ok, tmp_path / "o.tif", _identity, tile=16, overlap=12)
    assert sorted(os.listdir(tmp_path)) == ["float.tif", "ok.tif"]


class _Interrupt(Exception):
    pass


def _blur(tile, box=None):
    padded = np.pad(tile, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    return (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 4


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_interrupted_run_resumes_to_same_output(tmp_path, suffix):
    pixels = _image(np.random.default_rng(3), np.uint8, 3, (70, 90))  # 3 x 4 tiles
    _write(tmp_path / "in.tif", pixels, tile=(16, 16))
    reference, out = tmp_path / f"ref{suffix}", tmp_path / f"out{suffix}"
    restore_file_tiled(tmp_path / "in.tif", reference, _blur, tile=32, overlap=8)
    calls = []

    def failing(tile, box):
        if len(calls) == 7:
            raise _Interrupt
        calls.append(box)
        return _blur(tile)

    with pytest.raises(_Interrupt):
        restore_file_tiled(tmp_path / "in.tif", out, failing, tile=32, overlap=8, run_key="k")
    partial, state = partial_paths(out)
    assert not out.exists() and partial.exists() and state.is_dir()
    calls.clear()
    restore_file_tiled(tmp_path / "in.tif", out, lambda t, b: calls.append(b) or _blur(t),
                       tile=32, overlap=8, resume=True, run_key="k")
    if suffix == ".png":
        assert out.read_bytes() == reference.read_bytes()
    else:
        np.testing.assert_array_equal(tifffile.imread(out), tifffile.imread(reference))
    assert len(calls) == 12 - 7  # the 7 finished tiles are not redone
    assert not partial.exists() and not state.exists()


def test_resume_with_other_options_is_refused(tmp_path):
    _write(tmp_path / "in.tif", np.zeros((40, 40, 3), np.uint8))
    out = tmp_path / "out.tif"

    def failing(tile, box):
        raise _Interrupt

    with pytest.raises(_Interrupt):
        restore_file_tiled(tmp_path / "in.tif", out, failing, tile=16, overlap=4, run_key="a")
    with pytest.raises(InputError, match="other options"):
        restore_file_tiled(tmp_path / "in.tif", out, _identity, tile=16, overlap=4, resume=True,
                           run_key="b")
    assert partial_paths(out)[0].exists()  # the user's partial work is not thrown away
    restore_file_tiled(tmp_path / "in.tif", out, _identity, tile=16, overlap=4, run_key="b")
    assert out.exists() and not partial_paths(out)[0].exists()


def test_changed_input_is_not_resumed(tmp_path):
    rng = np.random.default_rng(6)
    _write(tmp_path / "in.tif", _image(rng, np.uint8, 3, (40, 40)))
    out = tmp_path / "out.tif"

    def failing(tile, box):
        raise _Interrupt

    with pytest.raises(_Interrupt):
        restore_file_tiled(tmp_path / "in.tif", out, failing, tile=16, overlap=4)
    _write(tmp_path / "in.tif", _image(rng, np.uint8, 3, (40, 40)))  # same size, new pixels
    os.utime(tmp_path / "in.tif", ns=(1, 1))
    with pytest.raises(InputError, match="another input"):
        restore_file_tiled(tmp_path / "in.tif", out, _identity, tile=16, overlap=4, resume=True)


def test_sink_refuses_foreign_partial(tmp_path):
    path = tmp_path / "x.tif.partial"
    _write(path, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="not a partial output"):
        TiffSink(path, (8, 8, 3), np.uint8, reopen=True)
