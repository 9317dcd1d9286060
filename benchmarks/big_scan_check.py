"""Is a restored 16384^2 scan whole and restored everywhere? A check of ``tiled_rss.synthetic_tiff``'s output.

The synthetic scan is a known smooth pattern (``tiled_rss.synthetic_tiff``: 128 + 60 sin(x / 50)
cos(y / 70), noise std 10, truncated to 8 bits), so every region of the restore can be scored
against it without a second copy of the image. For each band of ``--band`` rows: PSNR of the input
and of the output against the pattern (on a strip of ``--rows`` rows in the middle of the band,
all columns), and the output's darkest column mean (a band left unwritten reads 0 there).
Writes JSON and markdown beside ``--out``.

    python benchmarks/big_scan_check.py big.tif out.tif --out benchmarks/results/big_scan_check
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def pattern(y0: int, y1: int, width: int) -> np.ndarray:
    """(y1 - y0, width, 1) float64: the clean scan on the 0-255 scale, as synthetic_tiff truncates it."""
    ys, xs = np.mgrid[y0:y1, 0:width].astype(np.float32)
    # synthetic_tiff evaluates each 256-pixel tile in float32 from its own origin; the sum is the same
    return (128 + 60 * np.sin(xs / 50) * np.cos(ys / 70)).astype(np.float64)[..., None] - 0.5


def psnr(image: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((image - clean) ** 2)))


def main() -> None:
    from flowrt.io.tiff_stream import TiffSource
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--band", type=int, default=512)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    with TiffSource(args.input) as source, TiffSource(args.output) as output:
        height, width, _ = source.shape
        if output.shape != source.shape:
            raise SystemExit(f"output {output.shape} is not the input's {source.shape}")
        for y0 in range(0, height, args.band):
            middle = min(y0 + args.band // 2, height - args.rows)
            clean = pattern(middle, middle + args.rows, width)
            noisy = source.read(middle, middle + args.rows, 0, width) * 255.0
            restored = output.read(middle, middle + args.rows, 0, width) * 255.0
            rows.append({"rows": [middle, middle + args.rows], "psnr_input": round(psnr(noisy, clean), 2),
                         "psnr_output": round(psnr(restored, clean), 2),
                         "darkest_column_mean": round(float(restored.mean(axis=(0, 2)).min()), 1)})
    gains = [r["psnr_output"] - r["psnr_input"] for r in rows]
    summary = {"bands": len(rows), "psnr_input_mean": round(float(np.mean([r["psnr_input"] for r in rows])), 2),
               "psnr_output_mean": round(float(np.mean([r["psnr_output"] for r in rows])), 2),
               "gain_min": round(min(gains), 2), "gain_max": round(max(gains), 2),
               "darkest_column_mean_min": min(r["darkest_column_mean"] for r in rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"summary": summary, "bands": rows}, indent=1))
    lines = [f"# {args.output.name} against the known pattern, one strip of {args.rows} rows per band of {args.band}",
             "", "| " + " | ".join(summary) + " |", "|" + " --- |" * len(summary),
             "| " + " | ".join(str(v) for v in summary.values()) + " |", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
