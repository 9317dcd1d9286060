"""Cost of the degradation operators and image I/O at 512 x 512, on one CPU thread.

What a MAP iteration pays for the data term (forward model nll, and nll + backward), and what
reading and writing pay (JPEG with its coefficients decoded from the file, 16-bit PNG and TIFF).
Images are synthetic (smooth colour fields plus fine texture) so this runs anywhere. Median of
--repeats after one warm-up call. Writes benchmarks/results/operator_speed.json and .md. Usage:
    OMP_NUM_THREADS=1 python benchmarks/operator_speed.py [--repeats 5] [--side 512]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flowrt.io.image_file import read_image, write_image
from flowrt.io.jpeg_coefficients import read_jpeg_info
from flowrt.operators import build_forward_model, parse_blur

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def photo(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = (rng.random((side // 16, side // 16, 3)) * 255).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((side, side), Image.BICUBIC), np.float64)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def timed(func, repeats: int) -> float:
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jpeg_bytes(img: np.ndarray, quality: int, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def forward_models(img: np.ndarray) -> dict:
    """The issue's three tasks plus blur and inpainting, as the CLI would build them."""
    side = img.shape[0]
    rng = np.random.default_rng(1)
    clean = img.astype(np.float32) / 255
    noisy = np.clip(np.round(img + rng.normal(0, 25, img.shape)), 0, 255).astype(np.float32) / 255
    q20 = jpeg_bytes(img, 20)
    small = np.asarray(Image.fromarray(img).resize((side // 2, side // 2), Image.BICUBIC), np.float64)
    small = np.clip(np.round(small + rng.normal(0, 8, small.shape)), 0, 255).astype(np.uint8)
    q50 = jpeg_bytes(small, 50)
    decode = lambda data: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255  # noqa: E731
    holes = rng.random(img.shape[:2]) > 0.2
    return {
        "noise sigma 25": lambda: build_forward_model(noisy, sigma=25),
        "jpeg q20": lambda: build_forward_model(decode(q20), jpeg=read_jpeg_info(q20)),
        "multi (x2, sigma 8, q50)": lambda: build_forward_model(decode(q50), sigma=8, jpeg=read_jpeg_info(q50), scale=2),
        "blur gaussian:2 + sigma 2": lambda: build_forward_model(clean, sigma=2, blur=parse_blur("gaussian:2")),
        "inpaint 20% + sigma 2": lambda: build_forward_model(clean, sigma=2, mask=holes),
    }


def operator_rows(img: np.ndarray, repeats: int) -> list:
    rows = []
    for name, build in forward_models(img).items():
        build_s = timed(build, 1)
        fm = build()
        x = fm.initial_estimate().requires_grad_(True)
        nll_s = timed(lambda: fm.nll(x), repeats)

        def step():
            x.grad = None
            fm.nll(x).sum().backward()
        rows.append({"model": name, "build_s": build_s, "nll_ms": 1e3 * nll_s, "nll_backward_ms": 1e3 * timed(step, repeats)})
    return rows


def io_rows(img: np.ndarray, repeats: int) -> list:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "q20.jpg").write_bytes(jpeg_bytes(img, 20))
        (folder / "q95p.jpg").write_bytes(jpeg_bytes(img, 95, progressive=True))
        like = read_image(jpeg_bytes(img, 95))
        deep = like.__class__(**{**like.__dict__, "bit_depth": 16, "format": "PNG", "jpeg": None})
        write_image(folder / "deep.png", like.rgb, deep)
        write_image(folder / "deep.tif", like.rgb, deep)
        cases = {
            "read JPEG q20 + coefficients": lambda: read_image(folder / "q20.jpg").jpeg.coefficients(),
            "read progressive JPEG q95 + coefficients": lambda: read_image(folder / "q95p.jpg").jpeg.coefficients(),
            "read 16-bit PNG": lambda: read_image(folder / "deep.png"),
            "write 16-bit PNG": lambda: write_image(folder / "out.png", like.rgb, deep),
            "read 16-bit TIFF": lambda: read_image(folder / "deep.tif"),
            "write 16-bit TIFF": lambda: write_image(folder / "out.tif", like.rgb, deep),
        }
        for name, func in cases.items():
            rows.append({"operation": name, "ms": 1e3 * timed(func, repeats)})
    return rows


def markdown(result: dict) -> str:
    side = result["side"]
    lines = [f"# Operator and I/O cost at {side}x{side}, 1 CPU thread (median of {result['repeats']})", "",
             f"torch {result['torch']}, {result['machine']}, load average {result['load_before']:.1f} before the run "
             "(the machine is shared: read the figures as upper bounds)", "",
             "| forward model | build (s) | nll (ms) | nll + backward (ms) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['build_s']:.2f} | {r['nll_ms']:.1f} | {r['nll_backward_ms']:.1f} |"
              for r in result["operators"]]
    lines += ["", "| image I/O | ms |", "| --- | --- |"]
    lines += [f"| {r['operation']} | {r['ms']:.0f} |" for r in result["io"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--side", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    img = photo(args.side)
    result = {"load_before": os.getloadavg()[0], "side": args.side, "repeats": args.repeats, "torch": torch.__version__,
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
              "operators": operator_rows(img, args.repeats), "io": io_rows(img, args.repeats)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "operator_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "operator_speed.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
