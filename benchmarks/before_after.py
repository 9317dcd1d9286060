"""The README's before/after picture, from the images a quality run saved.

    python benchmarks/quality.py ... --save-images /tmp/qrun/images
    python benchmarks/before_after.py --images /tmp/qrun/images --photo plasma_BytheWater.png

One row per task (noise, jpeg, multi), columns: the degraded input (bicubic-upsampled for
multi), TV, flowrt, the clean crop; each restored tile is labelled with its PSNR.
Writes results/before_after.png.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402
from protocol import TASKS, load_photo, reference_for  # noqa: E402

COLUMNS = (("input", "degraded"), ("tv", "TV"), ("flowrt", "flowrt"))
LABEL_HEIGHT = 16


def tile(pixels: np.ndarray, text: str) -> Image.Image:
    """An (H, W, 3) uint8 image with a caption strip above it."""
    h, w = pixels.shape[:2]
    canvas = Image.new("RGB", (w, h + LABEL_HEIGHT), "white")
    canvas.paste(Image.fromarray(pixels), (0, LABEL_HEIGHT))
    ImageDraw.Draw(canvas).text((4, 2), text, fill="black")
    return canvas


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True, help="--save-images folder of a quality run")
    ap.add_argument("--photo", default="plasma_BytheWater.png")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/val"))
    ap.add_argument("--crop", type=int, default=256, help="the quality run's --crop")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "before_after.png")
    args = ap.parse_args(argv)
    clean = load_photo(args.data / args.photo, args.crop)
    stem = Path(args.photo).stem
    rows = []
    for task in TASKS:
        reference = reference_for(clean, TASKS[task])
        tiles = []
        for method, label in COLUMNS:
            path = args.images / "main" / method / task / f"{stem}.png"
            if not path.is_file():
                print(f"error: {path} is missing; run quality.py with --save-images", file=sys.stderr)
                return 2
            pixels = np.asarray(Image.open(path).convert("RGB"))
            score = psnr(reference / 255.0, pixels / 255.0)
            tiles.append(tile(pixels, f"{task}: {label} {score:.2f} dB"))
        tiles.append(tile(reference, "clean"))
        rows.append(tiles)
    width = sum(t.width for t in rows[0]) + 4 * (len(rows[0]) - 1)
    height = sum(r[0].height for r in rows) + 4 * (len(rows) - 1)
    sheet = Image.new("RGB", (width, height), "white")
    y = 0
    for row in rows:
        x = 0
        for t in row:
            sheet.paste(t, (x, y))
            x += t.width + 4
        y += row[0].height + 4
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({width}x{height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
