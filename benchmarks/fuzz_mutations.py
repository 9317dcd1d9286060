"""The fuzz's inputs: small valid seed files and seeded mutations of them (``benchmarks/fuzz_inputs.py``).

Mutations: bit flips, byte overwrites with extreme values, truncation, chunk / marker-segment /
IFD-entry swaps, drops and duplicates, header fields set to edge values (width, height, bit depth,
colour type, TIFF tag types, counts and values, JPEG frame sizes), spliced ranges; model folders get
flipped, truncated, deleted or swapped files and edited manifest fields. All driven by a
``random.Random`` the caller seeds.
"""
from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path
from typing import Dict, Optional

import numpy as np

__all__ = ["make_seed_images", "mutate", "mutate_model"]


# ---------------------------------------------------------------- seeds


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    waves = [0.5 + 0.3 * np.sin(0.2 * xx * (c + 1) + 0.1 * yy + c) for c in range(3)]
    return np.clip(np.stack(waves, 2) * 255 + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def make_seed_images() -> Dict[str, bytes]:
    """name -> bytes of a small valid file; the name's suffix is its format."""
    import tifffile
    from PIL import Image
    rgb = _photo(20, 28, 0)
    seeds: Dict[str, bytes] = {}

    def pil(name, image, fmt, **kw):
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        seeds[name] = buf.getvalue()

    pil("rgb8.png", Image.fromarray(rgb), "PNG")
    pil("grey-alpha.png", Image.fromarray(rgb).convert("LA"), "PNG")
    pil("palette.png", Image.fromarray(rgb).convert("P"), "PNG")
    from flowrt.io.png16 import encode_png16
    seeds["rgb16.png"] = encode_png16((rgb.astype(np.uint16) * 257), None, None)
    pil("baseline.jpg", Image.fromarray(rgb), "JPEG", quality=60)
    pil("progressive.jpg", Image.fromarray(rgb), "JPEG", quality=70, progressive=True, subsampling=0)
    for name, kw in {"striped.tif": dict(rowsperstrip=4), "tiled.tif": dict(tile=(16, 16)),
                     "deflate.tif": dict(compression="zlib", rowsperstrip=8),
                     "lzw.tif": dict(compression="lzw", rowsperstrip=8),
                     "packbits-grey.tif": dict(compression="packbits", rowsperstrip=8)}.items():
        buf = io.BytesIO()
        data = rgb[..., 0] if "grey" in name else rgb
        tifffile.imwrite(buf, data, photometric="minisblack" if "grey" in name else "rgb", **kw)
        seeds[name] = buf.getvalue()
    return seeds


# ---------------------------------------------------------------- mutations


def _png_chunks(data: bytes) -> Optional[list]:
    """[(offset, length incl. 12 bytes of framing)] of a PNG's chunks, or None if not walkable."""
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        end = pos + 12 + length
        if end > len(data):
            return chunks or None
        chunks.append((pos, end - pos))
        pos = end
    return chunks or None


def _jpeg_segments(data: bytes) -> Optional[list]:
    """[(offset, length)] of a JPEG's marker segments before the scan data, or None."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segments.append((pos, length + 2))
        pos += length + 2
    return segments or None


def _header_field(data: bytearray, rng: random.Random, kind: str) -> str:
    """Set a size or type field of the container's header to an edge value."""
    edge = rng.choice([0, 1, 2, 3, 7, 8, 16, 255, 256, 65535, 65536, 0x7FFFFFFF, 0xFFFFFFFF])
    if kind == "png" and len(data) > 33:
        field = rng.choice([(16, ">I"), (20, ">I"), (24, ">B"), (25, ">B"), (26, ">B"), (28, ">B")])
        size = struct.calcsize(field[1])
        data[field[0]:field[0] + size] = struct.pack(field[1], edge % (256 ** size))
        if rng.random() < 0.7:  # keep the CRC right, so the decoder gets past it and meets the value
            data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
        return f"png-header@{field[0]}={edge}"
    if kind == "jpg":
        sof = [i for i in range(len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2)]
        if sof:
            at = sof[0] + rng.choice([4, 5, 7, 9])
            width = 1 if at == sof[0] + 4 or at == sof[0] + 9 else 2
            data[at:at + width] = (edge % (256 ** width)).to_bytes(width, "big")
            return f"jpeg-frame@{at - sof[0]}={edge}"
    if kind == "tif" and len(data) > 16:
        count = struct.unpack("<H", data[8:10])[0] if data[:2] == b"II" else 0
        if count:
            entry = 10 + 12 * rng.randrange(min(count, (len(data) - 10) // 12))
            where = rng.choice([2, 4, 8])  # type, count, value
            size = 2 if where == 2 else 4
            data[entry + where:entry + where + size] = (edge % (256 ** size)).to_bytes(size, "little")
            tag = struct.unpack("<H", data[entry:entry + 2])[0]
            return f"tiff-tag{tag}+{where}={edge}"
    at = rng.randrange(len(data))
    data[at] = edge & 0xFF
    return f"byte@{at}={edge & 0xFF}"


def _shuffle(data: bytearray, rng: random.Random, kind: str) -> str:
    """Swap, drop or duplicate whole chunks (PNG), marker segments (JPEG) or IFD entries (TIFF)."""
    parts = (_png_chunks(bytes(data)) if kind == "png" else _jpeg_segments(bytes(data)) if kind == "jpg"
             else None)
    if kind == "tif" and data[:2] == b"II" and len(data) > 10:
        count = min(struct.unpack("<H", data[8:10])[0], (len(data) - 10) // 12)
        parts = [(10 + 12 * i, 12) for i in range(count)]
    if not parts or len(parts) < 2:
        return _flip(data, rng)
    (a, la), (b, lb) = sorted(rng.sample(parts, 2))
    action = rng.choice(["swap", "drop", "duplicate"])
    head, first, middle, second, tail = data[:a], data[a:a + la], data[a + la:b], data[b:b + lb], data[b + lb:]
    if action == "swap":
        data[:] = head + second + middle + first + tail
    elif action == "drop":
        data[:] = head + middle + second + tail
    else:
        data[:] = head + first + first + middle + second + tail
    return f"{kind}-parts-{action}@{a},{b}"


def _flip(data: bytearray, rng: random.Random) -> str:
    flips = rng.choice([1, 1, 2, 4, 16])
    where = []
    for _ in range(flips):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
        where.append(at)
    return f"flip{flips}@{where[0]}"


def mutate(data: bytes, kind: str, rng: random.Random) -> tuple:
    """(mutated bytes, description) of a seed of container ``kind`` ('png', 'jpg', 'tif')."""
    out = bytearray(data)
    choice = rng.choice(["flip", "flip", "truncate", "header", "header", "shuffle", "shuffle", "splice",
                         "overwrite", "double"])
    if choice == "flip":
        what = _flip(out, rng)
    elif choice == "truncate":
        cut = rng.randrange(1, len(out))
        out = out[:cut]
        what = f"truncate@{cut}"
    elif choice == "header":
        what = _header_field(out, rng, kind)
    elif choice == "shuffle":
        what = _shuffle(out, rng, kind)
    elif choice == "splice":  # a range copied over another
        a, b = sorted(rng.sample(range(len(out)), 2))
        n = rng.randrange(1, 64)
        out[b:b + n] = out[a:a + n]
        what = f"splice{n}@{a}->{b}"
    elif choice == "overwrite":
        at, n = rng.randrange(len(out)), rng.randrange(1, 32)
        out[at:at + n] = bytes([rng.choice([0x00, 0xFF, 0x7F, 0x80])]) * n
        what = f"overwrite{n}@{at}"
    else:  # two mutations
        out, first = mutate(bytes(out), kind, rng)
        out, second = mutate(bytes(out), kind, rng)
        out, what = bytearray(out), f"{first}+{second}"
    return bytes(out), what


def mutate_model(folder: Path, rng: random.Random) -> str:
    """Damage an exported model folder in place; returns what was done."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    target = rng.choice(files)
    choice = rng.choice(["flip", "truncate", "delete", "manifest-field", "manifest-text", "swap"])
    if choice == "delete":
        target.unlink()
        return f"delete {target.name}"
    if choice == "swap" and len(files) > 1:
        other = rng.choice([f for f in files if f != target])
        a, b = target.read_bytes(), other.read_bytes()
        target.write_bytes(b)
        other.write_bytes(a)
        return f"swap {target.name},{other.name}"
    if choice.startswith("manifest"):
        target = folder / "manifest.yaml"
        text = target.read_text() if target.exists() else ""
        lines = text.splitlines()
        if lines:
            i = rng.randrange(len(lines))
            if choice == "manifest-field" and ":" in lines[i]:
                key = lines[i].split(":", 1)[0]
                value = rng.choice(["0", "-1", "99999999999", "nan", "[]", "{}", "!!python/object:os.system x",
                                    "''", "abc", "1e308", "&a [*a, *a]"])
                lines[i] = f"{key}: {value}"
            else:
                del lines[i]
            target.write_text("\n".join(lines) + "\n")
            return f"{choice} line {i}"
        choice = "flip"
    data = bytearray(target.read_bytes())
    if choice == "truncate" and data:
        cut = rng.randrange(len(data))
        target.write_bytes(bytes(data[:cut]))
        return f"truncate {target.name}@{cut}"
    what = _flip(data, rng) if data else "empty"
    target.write_bytes(bytes(data))
    return f"{target.name} {what}"
