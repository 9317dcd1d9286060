"""The maintained codecs under flowrt.io: libjpeg (jpeglib) for JPEG coefficients, libpng
(imagecodecs) for 16-bit PNG, tifffile + imagecodecs for compressed TIFF.

Every image is tiny and made here from fixed seeds. JPEG coefficients are checked two ways: equal
to what jpeglib itself reads, and, independently of jpeglib, their dequantised IDCT equals
Pillow's own decode to within a couple of levels (which proves the block layout and order).
"""
from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from flowrt.errors import InputError
from flowrt.io.image_file import read_image, write_image
from flowrt.io.jpeg_coefficients import decode_coefficients, read_jpeg_info
from flowrt.io.tiff_file import read_tiff
from flowrt.io.tiff_stream import TiffSource

H, W = 37, 53  # odd: partial blocks and partial MCUs on both edges

# name -> Pillow save options; all quality 60
CORPUS = {
    "baseline 4:2:0": dict(subsampling=2),
    "progressive": dict(subsampling=2, progressive=True),
    "restart every 3 blocks": dict(subsampling=2, restart_marker_blocks=3),
    "progressive, restart every row": dict(subsampling=2, progressive=True, restart_marker_rows=1),
    "optimised Huffman": dict(subsampling=2, optimize=True),
    "4:4:4": dict(subsampling=0),
    "4:2:2": dict(subsampling=1),
    "greyscale": dict(grey=True),
}


def smooth_photo(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """uint8 (h, w, 3): soft colour waves plus mild noise, like a photo's detail at this size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [128 + 70 * np.sin(0.11 * xx + rng.uniform(0, 6)) * np.cos(0.07 * yy + rng.uniform(0, 6))
              for _ in range(3)]
    img = np.stack(planes, axis=2) + rng.normal(0, 3, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def jpeg_file(name: str, seed: int = 0) -> bytes:
    options = dict(CORPUS[name])
    im = Image.fromarray(smooth_photo(seed=seed))
    if options.pop("grey", False):
        im = im.convert("L")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=60, **options)
    return buf.getvalue()


def jpeglib_reference(data: bytes, tmp_path: Path):
    """(coefficient arrays, per-component quant tables) as jpeglib reads them itself."""
    import jpeglib

    path = tmp_path / "ref.jpg"
    path.write_bytes(data)
    with jpeglib.version("turbo210"):
        ref = jpeglib.read_dct(str(path))
        ref.load()
    comps = [ref.Y] + ([ref.Cb, ref.Cr] if ref.has_chrominance else [])
    return comps, [ref.qt[t] for t in ref.quant_tbl_no]


def idct_planes(info) -> list:
    """Dequantised IDCT of each component, + 128: float (blocks_y * 8, blocks_x * 8) per component."""
    n = np.arange(8)
    basis = np.sqrt(2 / 8) * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16)
    basis[0] /= np.sqrt(2)  # orthonormal DCT-II matrix: rows are frequencies
    planes = []
    for k, q in zip(info.coefficients(), info.quant):
        blocks = np.einsum("ui,yxuv,vj->yxij", basis, k * q, basis) + 128
        by, bx = k.shape[:2]
        planes.append(blocks.transpose(0, 2, 1, 3).reshape(by * 8, bx * 8))
    return planes


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_coefficients_and_tables_equal_jpeglib_and_pillow(name, tmp_path):
    data = jpeg_file(name)
    info = read_jpeg_info(data)
    coefs, tables = jpeglib_reference(data, tmp_path)
    assert info.exact and (info.width, info.height) == (W, H)
    assert len(info.coefficients()) == len(coefs) == (1 if name == "greyscale" else 3)
    for mine, ref in zip(info.coefficients(), coefs):
        assert mine.dtype == np.int32 and mine.shape[2:] == (8, 8)
        np.testing.assert_array_equal(mine, ref)
    for mine, ref in zip(info.quant, tables):
        np.testing.assert_array_equal(mine, ref)
    with Image.open(io.BytesIO(data)) as im:  # Pillow's tables, natural order, Y then chroma
        np.testing.assert_array_equal(info.quant_y.reshape(-1), im.quantization[0])
        if info.quant_c is not None:
            np.testing.assert_array_equal(info.quant_c.reshape(-1), im.quantization[1])
    expected = {"4:4:4": (1, 1), "4:2:2": (2, 1), "greyscale": (1, 1)}.get(name, (2, 2))
    assert info.subsampling == expected
    assert info.progressive == ("progressive" in name)


def test_entropy_coding_does_not_change_the_coefficients():
    base = read_jpeg_info(jpeg_file("baseline 4:2:0")).coefficients()
    for name in ("progressive", "restart every 3 blocks", "progressive, restart every row", "optimised Huffman"):
        other = read_jpeg_info(jpeg_file(name)).coefficients()
        assert all(np.array_equal(a, b) for a, b in zip(base, other)), name


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_idct_of_the_coefficients_matches_pillows_pixels(name):
    """Independent of jpeglib: the coefficients, dequantised and inverse-transformed, are the image."""
    data = jpeg_file(name)
    info = read_jpeg_info(data)
    planes = idct_planes(info)
    with Image.open(io.BytesIO(data)) as im:
        im.draft(im.mode if name == "greyscale" else "YCbCr", im.size)  # libjpeg's output, no RGB step
        decoded = np.asarray(im.convert("L" if name == "greyscale" else "YCbCr"), np.float64).reshape(H, W, -1)
    sx, sy = info.subsampling
    for c, plane in enumerate(planes):
        if c == 0:
            mine, theirs = plane[:H, :W], decoded[..., 0]
        else:
            mine, theirs = chroma_pair(plane, decoded[..., c], sy, sx)
        err = np.abs(np.clip(mine, 0, 255) - theirs)  # libjpeg's integer IDCT rounds a little differently
        assert err.max() <= 1.5 and err.mean() < 0.35, (name, c, err.max(), err.mean())  # measured <= 0.93, 0.26


def chroma_pair(plane: np.ndarray, upsampled: np.ndarray, sy: int, sx: int):
    """(IDCT chroma plane, Pillow's chroma) on the chroma grid, both as libjpeg's output implies.

    libjpeg upsamples 2x with a triangle filter (3/4 nearer sample, 1/4 the next), so the mean of
    each output cell is the sample smoothed by [1/8, 3/4, 1/8] along each subsampled axis.
    """
    ch, cw = -(-H // sy), -(-W // sx)
    mine = plane[:ch, :cw]
    for axis, factor in ((0, sy), (1, sx)):
        if factor == 2:
            padded = np.pad(mine, [(1, 1) if a == axis else (0, 0) for a in range(2)], mode="edge")
            ahead, behind = (padded[2:], padded[:-2]) if axis == 0 else (padded[:, 2:], padded[:, :-2])
            mine = 0.75 * mine + 0.125 * (ahead + behind)
    full = np.pad(upsampled, ((0, ch * sy - H), (0, cw * sx - W)), mode="edge")
    return mine, full.reshape(ch, sy, cw, sx).mean(axis=(1, 3))


def test_arithmetic_coded_jpeg_is_read_losslessly(tmp_path):
    """libjpeg-turbo decodes arithmetic coding (jpeglib's default 6b cannot): transcode a Huffman
    file to arithmetic coding without touching a coefficient and read the same numbers back."""
    import jpeglib

    data = jpeg_file("baseline 4:2:0")
    (tmp_path / "huff.jpg").write_bytes(data)
    with jpeglib.version("9e"):
        jpeglib.read_dct(str(tmp_path / "huff.jpg")).write_dct(str(tmp_path / "arith.jpg"), flags=["+ARITH_CODE"])
    arith = (tmp_path / "arith.jpg").read_bytes()
    assert b"\xff\xc9" in arith  # SOF9: extended sequential, arithmetic coding
    got = read_image(arith).jpeg.coefficients()
    assert all(np.array_equal(a, b) for a, b in zip(read_jpeg_info(data).coefficients(), got))


def test_in_memory_and_stdin_jpegs_leave_no_temporary_files(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    data = jpeg_file("progressive")
    assert read_image(data).jpeg.exact
    with pytest.raises(InputError):
        read_jpeg_info(b"\xff\xd8\xff\xdb\x00")
    assert list(scratch.iterdir()) == []


def test_damaged_jpegs_are_one_line_errors_and_libjpeg_stays_quiet(capfd, caplog):
    data = jpeg_file("baseline 4:2:0")
    for bad in (b"\xff\xd8\xff\xdb\x00", b"\xff\xd8" + b"\x00" * 50, data[:200]):
        with pytest.raises(InputError) as err:
            read_jpeg_info(bad)
        assert "\n" not in str(err.value)
    scan = data.index(b"\xff\xda")
    cut = data[:(scan + len(data)) // 2] + b"\xff\xd9"  # half the scan lost: tables kept, coefficients guessed
    with pytest.raises(InputError, match="corrupt JPEG"):
        decode_coefficients(cut)
    info = read_jpeg_info(cut)
    with caplog.at_level(logging.WARNING, logger="flowrt"):
        info.coefficients()
    assert not info.exact and "re-estimated" in caplog.text
    assert capfd.readouterr().err == ""  # libjpeg's fprintf(stderr) never reaches the terminal


# ---------------------------------------------------------------- 16-bit PNG


def test_png16_round_trip_keeps_pixels_icc_and_exif(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[274] = 6  # orientation: viewers rotate; flowrt must carry it, not apply it
    exif[305] = "flowrt test"
    src = tmp_path / "deep.png"
    rng = np.random.default_rng(1)
    samples = rng.integers(0, 65536, (H, W, 4)).astype(np.uint16)
    from flowrt.io.png16 import encode_png16

    src.write_bytes(encode_png16(samples, icc, exif.tobytes()))
    image = read_image(src)
    assert image.bit_depth == 16 and image.alpha is not None and image.icc_profile == icc
    assert image.orientation == 6 and image.exif.startswith(b"Exif\x00\x00")
    np.testing.assert_array_equal(np.round(image.rgb * 65535), samples[..., :3])
    write_image(tmp_path / "out.png", image.rgb, image)
    again = read_image(tmp_path / "out.png")
    np.testing.assert_array_equal(np.round(again.rgb * 65535), samples[..., :3])
    np.testing.assert_array_equal(np.round(again.alpha * 65535), samples[..., 3])
    assert again.icc_profile == icc and again.exif == image.exif and again.orientation == 6
    with Image.open(tmp_path / "out.png") as im:  # an ordinary PNG to other readers too
        assert im.info["icc_profile"] == icc and im.getexif()[305] == "flowrt test"


def test_damaged_png16_is_a_one_line_error(tmp_path, capfd):
    from flowrt.io.png16 import encode_png16

    data = encode_png16(np.random.default_rng(2).integers(0, 65536, (H, W, 3)).astype(np.uint16))
    for bad in (data[:len(data) // 2], data[:60] + b"\x00" * 40 + data[100:]):
        with pytest.raises(InputError) as err:
            read_image(bad)
        assert "\n" not in str(err.value)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- compressed TIFF

TIFF_CODECS = ["lzw", "zlib", "zstd", "jpeg"]


def write_tiff(path: Path, rgb: np.ndarray, compression: str, tile=None) -> Path:
    args = {"compressionargs": {"level": 95}} if compression == "jpeg" else {}
    tifffile.imwrite(path, rgb, photometric="rgb", compression=compression, tile=tile, **args)
    return path


@pytest.mark.parametrize("compression", TIFF_CODECS)
@pytest.mark.parametrize("tile", [None, (16, 16)])
def test_compressed_tiff_reads_whole_and_streamed(compression, tile, tmp_path):
    rgb = smooth_photo(40, 48, seed=3)
    path = write_tiff(tmp_path / "c.tif", rgb, compression, tile)
    whole = read_image(path)
    err = np.abs(whole.rgb * 255 - rgb)
    assert whole.mode == "RGB" and whole.bit_depth == 8
    if compression == "jpeg":  # lossy: YCbCr 4:2:0 at quality 95 drops most of the noise's chroma
        assert err.mean() < 4  # measured 2.4-2.6; a channel or colour-space mix-up gives tens
    else:
        assert err.max() < 1e-3
    with TiffSource(path) as source:
        assert source.shape == (40, 48, 3)
        np.testing.assert_allclose(source.read(5, 33, 7, 41), whole.rgb[5:33, 7:41], atol=1e-6)


def test_malformed_tiff_tags_become_one_flowrt_warning(tmp_path, capfd, caplog):
    import struct

    buf = io.BytesIO()
    tifffile.imwrite(buf, smooth_photo(8, 8)[..., 0], extratags=[(65000, "s", 0, "a long text value", True)],
                     metadata=None)
    data = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack("<H", data[entry:entry + 2])[0] == 65000:
            data[entry + 8:entry + 12] = struct.pack("<I", 10 ** 8)  # value offset past the end
    path = tmp_path / "badtag.tif"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="flowrt"):
        assert read_tiff(bytes(data), "badtag.tif", lambda *size: None)["rgb"].shape == (8, 8, 3)
        with TiffSource(path) as source:
            assert source.shape == (8, 8, 1)
    assert caplog.text.count("TIFF metadata ignored") == 2 and "65000" in caplog.text
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("compression", ["lzw", "jpeg"])
def test_compressed_tiff_restores_end_to_end(compression, tmp_path, tiny_prior, invoke_flowrt):
    src = write_tiff(tmp_path / "in.tif", smooth_photo(29, 37, seed=4), compression)
    out = tmp_path / "out.png"
    result = invoke_flowrt("restore", src, "-o", out, "--iters", "1", "--model", tiny_prior)
    assert result.exit_code == 0, result.output
    restored = read_image(out)
    assert restored.size == (37, 29) and restored.mode == "RGB"


def test_png16_transparent_colour_becomes_alpha():
    """A tRNS chunk (one transparent grey value) reads as grey + alpha, as Pillow sees it."""
    import struct
    import zlib

    from flowrt.io.png16 import IHDR_END, encode_png16

    grey = np.random.default_rng(5).integers(0, 4, (H, W, 1)).astype(np.uint16) * 1000
    png = encode_png16(grey)
    body = struct.pack(">H", 2000)
    trns = struct.pack(">I", 2) + b"tRNS" + body + struct.pack(">I", zlib.crc32(b"tRNS" + body))
    image = read_image(png[:IHDR_END] + trns + png[IHDR_END:])
    assert image.mode == "L" and image.bit_depth == 16
    np.testing.assert_array_equal(image.alpha == 0, grey[..., 0] == 2000)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_cmyk_tiff_reads_as_rgb_like_pillow(dtype, tmp_path):
    top = np.iinfo(dtype).max
    cmyk = (np.random.default_rng(6).random((H, W, 4)) * top).astype(dtype)
    path = tmp_path / "cmyk.tif"
    tifffile.imwrite(path, cmyk, photometric="separated", compression="lzw")
    image = read_image(path)
    unit = cmyk.astype(np.float64) / top
    assert image.mode == "RGB" and image.bit_depth == (8 if dtype == np.uint8 else 16)
    np.testing.assert_allclose(image.rgb, (1 - unit[..., :3]) * (1 - unit[..., 3:]), atol=1e-6)
    if dtype == np.uint8:  # Pillow's own CMYK -> RGB, within its integer rounding
        with Image.open(path) as im:
            assert np.abs(np.asarray(im.convert("RGB"), np.float64) - image.rgb * 255).max() <= 1
