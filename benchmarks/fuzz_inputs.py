"""Fuzz flowrt's load -> plan -> restore -> write path with seeded mutations of small valid inputs.

Seeds (made here, a few hundred bytes to a few KB each): PNG 8-bit RGB, 16-bit RGB, grey+alpha and
palette; JPEG baseline 4:2:0 and progressive; TIFF striped, tiled, deflate, LZW and PackBits; and an
exported tiny model folder. Mutations (``mutate``): bit flips, byte overwrites with extreme values,
truncation, chunk/marker-segment/IFD-entry shuffles and drops, header fields set to edge values
(width, height, bit depth, colour type, TIFF tag values, JPEG frame sizes), spliced and duplicated
ranges. Every case runs in this process: ``prepare_restore`` (load and plan) then ``run_restore``
with one MAP iteration into a fresh folder (TIFF inputs to TIFF in 16-pixel tiles, the streamed
route, for half the cases); a model case loads the mutated folder and restores a small valid image.

A case passes when it ends in success (the output exists and decodes) or in a ``FlowrtError`` of
one line with nothing written, and within its time limit. Anything else is a failure: an exception
of another type (a traceback for a user), a hang, a partial output or a stray file.

  python benchmarks/fuzz_inputs.py --cases 5000 --seed 0 --out benchmarks/results

writes ``results/fuzz_inputs.json`` (every case's kind, mutation and outcome) and
``results/fuzz_inputs.md`` (counts per seed file and outcome). Cases run in forked workers so that
a hang in native code is caught (the worker is killed, the case counted as a hang, the run goes on).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

PIXEL_LIMIT = 1 << 20          # the fuzz's decompression-bomb limit: mutated sizes stay cheap
CASE_SECONDS = 30              # a case running longer is a hang


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


# ---------------------------------------------------------------- running one case


@dataclass
class Outcome:
    case: int
    seed_file: str
    mutation: str
    route: str
    result: str              # success | user-error | traceback | hang | partial-output | stray-file | multi-line
    detail: str = ""
    seconds: float = 0.0


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _restore(src: Path, out: Path, model_dir, tile: Optional[int], prior=None) -> None:
    from flowrt.pipeline.plan import RestoreOptions
    from flowrt.pipeline.run import TilingOptions, model_key, prepare_restore, run_restore
    from flowrt.prior.engines import load_prior
    from flowrt.solve.solver import SolverConfig
    opts = RestoreOptions(solver=SolverConfig(iters=1)).validate()
    tiling = TilingOptions(tile=tile, overlap=4)
    job = prepare_restore(str(src), str(out), opts, tiling)
    with job.source:  # closed by run_restore too; here also when loading the prior fails
        if prior is None:
            prior = load_prior(model_dir, "torch")
        run_restore(job, prior, opts, model=model_key(model_dir) if model_dir else "fuzz")


def run_case(case: int, work: Path, seeds: Dict[str, bytes], model_dir: Path, prior,
             seconds: float = CASE_SECONDS) -> Outcome:
    """Case number ``case`` (its own seeded rng): mutate, restore, classify. Never raises."""
    from flowrt.errors import FlowrtError
    from flowrt.io.image_file import read_image
    rng = random.Random(case)
    names = sorted(seeds) + ["model"]
    seed_file = names[case % len(names)]
    folder = work / f"case{case}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "out").mkdir(parents=True)
    if seed_file == "model":
        model = folder / "model"
        shutil.copytree(model_dir, model)
        mutation, route = mutate_model(model, rng), "model"
        src = folder / "in.png"
        src.write_bytes(seeds["rgb8.png"])
        out, tile, use_prior = folder / "out" / "out.png", None, None
    else:
        kind = seed_file.rsplit(".", 1)[1]
        data, mutation = mutate(seeds[seed_file], kind, rng)
        src = folder / f"in.{kind}"
        src.write_bytes(data)
        streamed = kind == "tif" and rng.random() < 0.5
        route = "tiff-tiled" if streamed else ("tiled" if rng.random() < 0.2 else "whole")
        suffix = ".tif" if kind == "tif" else ".png"
        out, tile, use_prior = folder / "out" / f"out{suffix}", (16 if route != "whole" else 0), prior
        model = model_dir
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        _restore(src, out, model, tile, use_prior)
        result, detail = "success", ""
    except _Timeout:
        result, detail = "hang", f"over {seconds} s"
    except FlowrtError as exc:
        message = str(exc)
        result = "user-error" if message and "\n" not in message and len(message) < 600 else "multi-line"
        detail = message[:300]
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzz looks for
        import traceback
        result, detail = "traceback", "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
        detail += " | " + traceback.format_exc().splitlines()[-3].strip()[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - t0
    left = sorted(p.name for p in (folder / "out").iterdir())
    if result == "success":
        if left != [out.name]:
            result, detail = "stray-file", f"left {left}"
        else:
            try:
                read_image(out)
            except FlowrtError as exc:
                result, detail = "partial-output", str(exc)[:300]
    elif result in ("user-error", "multi-line") and left:
        result, detail = "partial-output", f"left {left} after: {detail}"
    strays = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    if strays and result in ("success", "user-error"):
        result, detail = "stray-file", f"left {strays}"
    shutil.rmtree(folder, ignore_errors=True)
    return Outcome(case, seed_file, mutation, route, result, detail, round(elapsed, 3))


def setup(work: Path):
    """(seed images, model folder, loaded prior) for running cases under ``work``; sets the fuzz's
    pixel limit and keeps torch on one thread."""
    import logging

    import torch
    from PIL import Image
    torch.set_num_threads(1)
    Image.MAX_IMAGE_PIXELS = PIXEL_LIMIT
    logging.getLogger("flowrt").setLevel(logging.ERROR)  # damaged metadata warns on every case
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import write_tiny_checkpoint
    from flowrt.export.pipeline import export_checkpoint
    from flowrt.prior.engines import load_prior
    model_dir = work / "prior"
    if not (model_dir / "manifest.yaml").exists():
        export_checkpoint(write_tiny_checkpoint(work / "tiny.pt"), model_dir)
    return make_seed_images(), model_dir, load_prior(model_dir, "torch")


# ---------------------------------------------------------------- the long run


def _worker(cases: List[int], work: Path, seeds, model_dir, prior, write_fd: int) -> None:
    for case in cases:
        os.write(write_fd, (json.dumps({"start": case}) + "\n").encode())
        outcome = run_case(case, work, seeds, model_dir, prior)
        os.write(write_fd, (json.dumps(asdict(outcome)) + "\n").encode())


def run_forked(cases: List[int], work: Path, seeds, model_dir, prior, hang_seconds: float) -> List[Outcome]:
    """Run ``cases`` in forked workers; a worker silent for ``hang_seconds`` is killed, its case is a hang."""
    outcomes: List[Outcome] = []
    pending = list(cases)
    while pending:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            code = 70
            try:
                os.close(read_fd)
                _worker(pending, work, seeds, model_dir, prior, write_fd)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        buffer, current = b"", None
        while True:
            ready, _, _ = select.select([read_fd], [], [], hang_seconds)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                row = json.loads(line)
                if "start" in row:
                    current = row["start"]
                else:
                    outcomes.append(Outcome(**row))
                    pending.remove(row["case"])
                    current = None
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if current is not None:  # the worker died or hung inside a case
            why = "hang" if not os.WIFEXITED(status) and os.WTERMSIG(status) == signal.SIGKILL else "traceback"
            names = sorted(seeds) + ["model"]
            outcomes.append(Outcome(current, names[current % len(names)], "?", "?", why,
                                    f"worker ended with status {status}"))
            pending.remove(current)
        elif pending and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            break
    return sorted(outcomes, key=lambda o: o.case)


def write_results(outcomes: List[Outcome], out_dir: Path, command: str, seconds: float) -> None:
    results = ("success", "user-error", "traceback", "hang", "partial-output", "stray-file", "multi-line")
    table: Dict[str, Dict[str, int]] = {}
    for o in outcomes:
        table.setdefault(o.seed_file, {r: 0 for r in results})[o.result] += 1
    totals = {r: sum(row[r] for row in table.values()) for r in results}
    bad = [asdict(o) for o in outcomes if o.result not in ("success", "user-error")]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fuzz_inputs.json").write_text(json.dumps(
        {"command": command, "cases": len(outcomes), "seconds": round(seconds, 1), "pixel_limit": PIXEL_LIMIT,
         "totals": totals, "per_seed": table, "failures": bad,
         "cases_detail": [asdict(o) for o in outcomes]}, indent=1))
    lines = [f"# fuzz_inputs: {len(outcomes)} mutated inputs", "",
             f"`{command}` ({seconds / 60:.1f} min, one core). Pass = success or a one-line flowrt error "
             "with nothing written.", "",
             "| seed file | " + " | ".join(results) + " |", "| --- |" + " ---: |" * len(results)]
    for name in sorted(table):
        lines.append(f"| {name} | " + " | ".join(str(table[name][r]) for r in results) + " |")
    lines.append("| **total** | " + " | ".join(f"**{totals[r]}**" for r in results) + " |")
    if bad:
        lines += ["", "## failures", ""] + [f"- case {b['case']} {b['seed_file']} ({b['mutation']}): "
                                            f"{b['result']}: {b['detail']}" for b in bad[:50]]
    (out_dir / "fuzz_inputs.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--first", type=int, default=0, help="first case number (cases are seeded by it)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--hang-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    command = "python benchmarks/fuzz_inputs.py " + " ".join(sys.argv[1:] if argv is None else argv)
    work = Path(tempfile.mkdtemp(prefix="flowrt-fuzz-"))
    try:
        seeds, model_dir, prior = setup(work)
        t0 = time.perf_counter()
        outcomes = run_forked(list(range(args.first, args.first + args.cases)), work, seeds, model_dir, prior,
                              args.hang_seconds)
        write_results(outcomes, Path(args.out), command, time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bad = sum(o.result not in ("success", "user-error") for o in outcomes)
    print(f"{len(outcomes)} cases, {bad} failures; see {args.out}/fuzz_inputs.md")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
