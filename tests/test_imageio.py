"""flowrt.io.image_file: every supported container, depth and colour mode, metadata kept, bad files refused.

Round trips must be bit-exact at the input's bit depth. Files are tiny, odd-sized and made here.
"""
from __future__ import annotations

import io
import struct
import sys
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from flowrt.errors import InputError
from flowrt.io.image_file import read_image, write_image
from flowrt.io.png16 import decode_png16, encode_png16

H, W = 11, 13
ICC = b"not-a-real-icc-profile-but-bytes-all-the-same"


def _samples(channels: int, depth: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 255 if depth == 8 else 65535
    return rng.integers(0, top + 1, (H, W, channels)).astype(np.uint8 if depth == 8 else np.uint16)


def _exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[274] = orientation
    return tags.tobytes()


def _save(path, samples: np.ndarray, fmt: str, **meta) -> None:
    channels = samples.shape[2]
    if fmt == "TIFF":
        extra = {"extrasamples": ["unassalpha"]} if channels in (2, 4) else {}
        tifffile.imwrite(path, samples[..., 0] if channels == 1 else samples,
                         photometric="minisblack" if channels <= 2 else "rgb", **extra)
    elif samples.dtype == np.uint16:
        path.write_bytes(encode_png16(samples, meta.get("icc_profile"), meta.get("exif", b"")[6:] or None))
    else:
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        Image.fromarray(samples[..., 0] if channels == 1 else samples, mode).save(path, "PNG", **meta)


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("TIFF", ".tif")])
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_round_trip_is_exact(tmp_path, fmt, suffix, depth, channels):
    samples = _samples(channels, depth)
    src = tmp_path / f"in{suffix}"
    _save(src, samples, fmt)
    image = read_image(src)
    assert image.format == fmt and image.bit_depth == depth and image.size == (W, H)
    assert image.mode == ("L" if channels <= 2 else "RGB")
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (H, W, 3)
    assert 0 <= image.rgb.min() and image.rgb.max() <= 1
    assert (image.alpha is not None) == (channels in (2, 4))
    out = tmp_path / f"out{suffix}"
    write_image(out, image.rgb, image)
    again = read_image(out)
    assert again.bit_depth == depth and again.mode == image.mode
    top = 255 if depth == 8 else 65535
    np.testing.assert_array_equal(np.round(again.rgb * top), np.round(image.rgb * top))
    if image.alpha is not None:
        np.testing.assert_array_equal(np.round(again.alpha * top), samples[..., -1])


def test_greyscale_is_replicated_and_stays_grey(tmp_path):
    src = tmp_path / "g.png"
    _save(src, _samples(1, 8), "PNG")
    image = read_image(src)
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 2])
    out = tmp_path / "g.tif"
    write_image(out, image.rgb, image)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].shape == (H, W)


def test_bit_depth_override(tmp_path):
    src = tmp_path / "a.png"
    samples = _samples(3, 8)
    _save(src, samples, "PNG")
    image = read_image(src)
    write_image(tmp_path / "b.png", image.rgb, image, bit_depth=16)
    deep = read_image(tmp_path / "b.png")
    assert deep.bit_depth == 16
    np.testing.assert_array_equal(np.round(deep.rgb * 255), samples)
    with pytest.raises(InputError):
        write_image(tmp_path / "c.jpg", image.rgb, image, bit_depth=16)


def _adam7_png16(pixels: np.ndarray, filters=(0, 1, 2, 3, 4)) -> bytes:
    """A reference interlaced 16-bit PNG writer, cycling through every row filter."""
    h, w, c = pixels.shape
    bpp, raw, n = 2 * c, [], 0
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        sub = pixels[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        rows = sub.astype(">u2").view(np.uint8).reshape(sub.shape[0], -1).astype(np.int64)
        prev = np.zeros(rows.shape[1], np.int64)
        for row in rows:
            kind = filters[n % len(filters)]
            n += 1
            out = []
            for i, v in enumerate(row):
                a = out_src = row[i - bpp] if i >= bpp else 0
                b, cc = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - cc
                paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - cc) else (b if abs(p - b) <= abs(p - cc) else cc)
                pred = [0, out_src, b, (a + b) // 2, paeth][kind]
                out.append((v - pred) & 0xFF)
            raw.append(bytes([kind]) + bytes(out))
            prev = row
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(b"".join(raw))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png16_decodes_interlaced_and_every_filter(channels):
    pixels = _samples(channels, 16, seed=channels)
    assert np.array_equal(decode_png16(_adam7_png16(pixels), "x", lambda *a: None).pixels, pixels)


def test_png16_from_pillow_grey():
    grey = np.cumsum(np.random.default_rng(3).integers(0, 300, (H, W)), axis=1).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    image = read_image(buf.getvalue())
    assert image.bit_depth == 16 and image.mode == "L"
    np.testing.assert_array_equal(np.round(image.rgb[..., 0] * 65535), grey)


def test_palette_png_with_transparency(tmp_path):
    im = Image.fromarray(_samples(3, 8)).convert("P")
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    image = read_image(tmp_path / "p.png")
    assert image.mode == "RGB" and image.alpha is not None and image.alpha.min() == 0


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
@pytest.mark.parametrize("src_fmt", ["png8", "png16", "jpeg"])
def test_icc_and_orientation_survive(tmp_path, src_fmt, suffix):
    src = tmp_path / "in.bin"
    meta = {"icc_profile": ICC, "exif": _exif(6)}
    if src_fmt == "jpeg":
        Image.fromarray(_samples(3, 8)).save(src, "JPEG", quality=80, **meta)
    else:
        _save(src, _samples(3, 8 if src_fmt == "png8" else 16), "PNG", **meta)
    image = read_image(src)
    assert image.icc_profile == ICC and image.orientation == 6 and image.exif.startswith(b"Exif\x00\x00")
    out = tmp_path / f"out{suffix}"
    write_image(out, image.rgb, image)
    again = read_image(out)
    assert again.icc_profile == ICC
    assert again.orientation == 6
    assert again.size == image.size  # pixels were never rotated


def test_tiff_orientation_tag_reaches_png(tmp_path):
    tifffile.imwrite(tmp_path / "o.tif", _samples(3, 16), photometric="rgb", extratags=[(274, "H", 1, 8, True)])
    image = read_image(tmp_path / "o.tif")
    assert image.orientation == 8
    write_image(tmp_path / "o.png", image.rgb, image)
    assert read_image(tmp_path / "o.png").orientation == 8


def test_tiff_layouts(tmp_path):
    rgb = _samples(3, 8)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, 2, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(np.round(read_image(tmp_path / "planar.tif").rgb * 255), rgb)
    grey = _samples(1, 8)[..., 0]
    tifffile.imwrite(tmp_path / "white.tif", grey, photometric="miniswhite")
    assert np.array_equal(np.round(read_image(tmp_path / "white.tif").rgb[..., 0] * 255), 255 - grey)
    rgba = _samples(4, 8).astype(np.float64) / 255
    premult = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], 2)
    tifffile.imwrite(tmp_path / "assoc.tif", np.round(premult * 65535).astype(np.uint16),
                     photometric="rgb", extrasamples=["assocalpha"])
    image = read_image(tmp_path / "assoc.tif")
    visible = rgba[..., 3] > 0.2
    np.testing.assert_allclose(image.rgb[visible], rgba[..., :3][visible], atol=2e-3)


def test_jpeg_info(tmp_path):
    src = tmp_path / "a.jpg"
    Image.fromarray(_samples(3, 8)).save(src, quality=30)
    image = read_image(src)
    assert image.format == "JPEG" and image.jpeg is not None and image.jpeg.data == src.read_bytes()
    with Image.open(src) as im:
        np.testing.assert_array_equal(image.jpeg.quant_y.reshape(-1), im.quantization[0])
        np.testing.assert_array_equal(image.jpeg.quant_c.reshape(-1), im.quantization[1])
    assert image.jpeg.subsampling == (2, 2) and image.jpeg.quant_y.shape == (8, 8)
    Image.fromarray(_samples(3, 8)).convert("L").save(tmp_path / "g.jpg", quality=60)
    grey = read_image(tmp_path / "g.jpg")
    assert grey.mode == "L" and grey.jpeg.quant_c is None and grey.jpeg.subsampling == (1, 1)
    Image.fromarray(_samples(3, 8)).save(tmp_path / "f.jpg", quality=60, subsampling=0)
    assert read_image(tmp_path / "f.jpg").jpeg.subsampling == (1, 1)


def test_bytes_stdin_and_stdout(tmp_path, monkeypatch):
    buf = io.BytesIO()
    Image.fromarray(_samples(3, 8)).save(buf, "PNG")
    from_bytes = read_image(buf.getvalue())
    assert from_bytes.source is None and from_bytes.format == "PNG"

    class Pipe:
        def __init__(self, data=b""):
            self.buffer = io.BytesIO(data)
    monkeypatch.setattr(sys, "stdin", Pipe(buf.getvalue()))
    from_stdin = read_image("-")
    assert np.array_equal(from_stdin.rgb, from_bytes.rgb)
    out = Pipe()
    monkeypatch.setattr(sys, "stdout", out)
    write_image("-", from_stdin.rgb, from_stdin)
    assert out.buffer.getvalue().startswith(b"\x89PNG")
    assert np.array_equal(read_image(out.buffer.getvalue()).rgb, from_bytes.rgb)


def _good_files(tmp_path):
    files = {}
    for name, fmt in (("a.png", "PNG"), ("a.jpg", "JPEG")):
        Image.fromarray(_samples(3, 8)).save(tmp_path / name, fmt)
        files[name] = (tmp_path / name).read_bytes()
    (tmp_path / "a16.png").write_bytes(encode_png16(_samples(3, 16)))
    tifffile.imwrite(tmp_path / "a.tif", _samples(3, 8), photometric="rgb")
    files["a16.png"] = (tmp_path / "a16.png").read_bytes()
    files["a.tif"] = (tmp_path / "a.tif").read_bytes()
    return files


def test_bad_inputs_are_one_line_input_errors(tmp_path):
    files = _good_files(tmp_path)
    cases = {"missing.png": None, "empty.png": b"", "garbage.png": b"hello, not an image" * 10}
    for name, data in files.items():
        cases["trunc-" + name] = data[:len(data) // 2]
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(InputError) as info:
            read_image(path)
        message = str(info.value)
        assert name in message and "\n" not in message, message
    with pytest.raises(InputError):
        read_image(tmp_path)  # a folder


def test_zero_size(tmp_path):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    for depth in (8, 16):
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, depth, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
        with pytest.raises(InputError):
            read_image(png)


def test_decompression_bomb(tmp_path, monkeypatch):
    files = _good_files(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    for name in files:
        with pytest.raises(InputError, match="decompression-bomb"):
            read_image(tmp_path / name)


def test_write_refuses_input_and_is_atomic(tmp_path):
    src = tmp_path / "in.png"
    _save(src, _samples(4, 8), "PNG")
    before = src.read_bytes()
    image = read_image(src)
    for target in (src, tmp_path / "." / "in.png"):
        with pytest.raises(InputError, match="overwrite"):
            write_image(target, image.rgb * 0, image)
    (tmp_path / "link.png").symlink_to(src)
    with pytest.raises(InputError, match="overwrite"):
        write_image(tmp_path / "link.png", image.rgb * 0, image)
    with pytest.raises(InputError, match="alpha"):
        write_image(tmp_path / "out.jpg", image.rgb, image)
    with pytest.raises(InputError, match="suffix"):
        write_image(tmp_path / "out.gif", image.rgb, image)
    with pytest.raises(InputError, match="folder"):
        write_image(tmp_path / "nope" / "out.png", image.rgb, image)
    with pytest.raises(ValueError):
        write_image(tmp_path / "nan.png", np.full_like(image.rgb, np.nan), image)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.png"]  # no partial output
    write_image(tmp_path / "out.png", image.rgb, image)
    write_image(tmp_path / "out.png", image.rgb, image)  # replacing an earlier output is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.png", "out.png"]


def test_alpha_follows_a_new_size(tmp_path):
    src = tmp_path / "in.png"
    _save(src, _samples(4, 8), "PNG")
    image = read_image(src)
    big = np.repeat(np.repeat(image.rgb, 2, 0), 2, 1)
    write_image(tmp_path / "big.png", big, image)
    out = read_image(tmp_path / "big.png")
    assert out.size == (2 * W, 2 * H) and out.alpha.shape == (2 * H, 2 * W)
