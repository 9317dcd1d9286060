"""Can noise that a JPEG nearly erased be told from texture? A probe of the DCT-domain reading.

``--sigma auto`` reads a decoded JPEG's noise with the pixel estimator; below 5 it plans no noise
term (``plan.JPEG_NOISE_THRESHOLD``), because clean textured photos read up to 3.7 at quality 95
(benchmarks/results/jpeg_noise.md). So noise 8 through quality 50 (the protocol's multi chain) and
noise 10 through quality 70 read 0.5-1.0 and are restored as JPEG alone (issue 24, point 7).

The probe: the luma DCT coefficients on the 8x8 grid (the decode's, quantised back with the file's
own luma table) say more than the pixels. Under zero-mean Gaussian noise of std s per RGB channel
the luma coefficient carries std 0.668 s, so each block has a likelihood of s from its quantised
values k: P(k) = P(N(0, (0.668 s)^2) in [q (k - 1/2), q (k + 1/2)]). The reading: per block, the
maximum-likelihood s over the AC zigzag positions 3-63; the quarter of unclipped blocks with the
lowest; their pooled maximum-likelihood s over the zigzag positions 3-14 (where the quantiser keeps
the most noise). A detector needs a threshold with every clean JPEG below and the noisy ones above:
the table gives, per case, the range over the photos, and the verdict.

Photos: val-photos and val (never kodak24), 256x256 centre crops and whole photos.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/jpeg_noise_dct.py
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import TASKS, add_gaussian_noise, degrade, encode_jpeg, list_photos, load_photo, seed_for  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
CLEAN_QUALITIES = (30, 50, 70, 90, 95)
NOISY = ((8, 50), (10, 70), (15, 70))
LUMA_NOISE = 0.668          # std of BT.601 luma for unit-std independent noise per RGB channel
GRID = np.exp(np.linspace(np.log(0.3), np.log(80.0), 60))   # candidate s, 0-255 luma scale
ZIGZAG = np.array([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
                   27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37,
                   44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63])


def log_likelihoods(k: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(N, len(GRID)): log P(quantised values k (N, F) | luma noise std GRID) with steps q (F,)."""
    from scipy.special import ndtr   # scipy comes with the bench extra (scikit-image, bm3d)
    upper = ((np.abs(k) + 0.5) * q)[:, None, :] / GRID[None, :, None]
    lower = ((np.abs(k) - 0.5) * q)[:, None, :] / GRID[None, :, None]
    mass = np.where(k[:, None, :] == 0, 2 * ndtr(upper) - 1, 2 * (ndtr(upper) - ndtr(lower)))
    return np.log(np.maximum(mass, 1e-300)).sum(axis=2)


def dct_reading(decoded: np.ndarray, quant_y: np.ndarray) -> float:
    """The probe's reading (0-255, per RGB channel) of a decoded JPEG (H, W, 3) uint8."""
    from flowrt.pipeline.jpeg_detect import block_coefficients, luma_255
    coefficients = block_coefficients(luma_255(decoded / 255.0), max_blocks=4096)
    q = np.asarray(quant_y, np.float64).reshape(64)
    k = np.round(coefficients / q)
    mean = coefficients[:, 0] / 8 + 128
    unclipped = (mean > 20) & (mean < 235)
    k = k[unclipped] if unclipped.sum() >= 16 else k
    per_block = GRID[log_likelihoods(k[:, ZIGZAG[3:]], q[ZIGZAG[3:]]).argmax(axis=1)]
    flattest = k[per_block <= np.quantile(per_block, 0.25)]
    pooled = log_likelihoods(flattest[:, ZIGZAG[3:15]], q[ZIGZAG[3:15]]).sum(axis=0)
    return float(GRID[pooled.argmax()] / LUMA_NOISE)


def readings(data: bytes) -> dict:
    from flowrt.io.jpeg_coefficients import read_jpeg_info
    from flowrt.pipeline.noise_level import estimate_sigma
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return {"dct": round(dct_reading(decoded, read_jpeg_info(data).quant_y), 2),
            "pixels": round(estimate_sigma(decoded / 255.0), 2)}


def cases(photo: Path, index: int, crop):
    clean = load_photo(photo, crop)
    for quality in CLEAN_QUALITIES:
        yield f"clean q{quality}", encode_jpeg(clean, quality)
    for sigma, quality in NOISY:
        noisy = add_gaussian_noise(clean, sigma, np.random.default_rng(1000 * index + sigma))
        yield f"noise {sigma} q{quality}", encode_jpeg(noisy, quality)
    _, data = degrade(clean, TASKS["multi"], seed_for("multi", photo.name))
    yield "multi (x1/2, noise 8, q50)", data


def table(rows: list, threshold: float = 5.0) -> str:
    """Per size and case: the range of each reading over the photos, and how many photos a detector
    "DCT reading >= threshold" would call noisy (a false alarm on a clean JPEG)."""
    lines = [f"| size | case | DCT reading, min - max | DCT reading >= {threshold:g} | pixel reading, min - max |",
             "| --- | --- | --- | --- | --- |"]
    for size in dict.fromkeys(r["size"] for r in rows):
        for case in dict.fromkeys(r["case"] for r in rows):
            dct = [r["dct"] for r in rows if r["size"] == size and r["case"] == case]
            pix = [r["pixels"] for r in rows if r["size"] == size and r["case"] == case]
            lines.append(f"| {size} | {case} | {min(dct):.1f} - {max(dct):.1f} | "
                         f"{sum(v >= threshold for v in dct)} of {len(dct)} | {min(pix):.1f} - {max(pix):.1f} |")
    clean = [r for r in rows if r["case"].startswith("clean")]
    lowest = min(r["dct"] for r in rows if not r["case"].startswith("clean"))
    above = sorted({r["photo"] for r in clean if r["dct"] >= lowest})
    lines.append(f"\nThe lowest noisy reading is {lowest:.1f}; clean JPEGs of {len(above)} of "
                 f"{len({r['photo'] for r in rows})} photos read at or above it ({', '.join(above)}): "
                 + ("a threshold separates them." if not above else "no threshold separates clean from noisy."))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--from-json", type=Path, help="rewrite the table from an earlier run's JSON")
    args = parser.parse_args()
    photos = list_photos(args.data / "val-photos") + list_photos(args.data / "val")
    rows = json.loads(args.from_json.read_text()) if args.from_json else []
    for size, crop in (() if args.from_json else (("crop 256", 256), ("whole", None))):
        for index, photo in enumerate(photos):
            for case, data in cases(photo, index, crop):
                rows.append({"size": size, "photo": photo.name, "case": case, **readings(data)})
            print(size, photo.name, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jpeg_noise_dct.json").write_text(json.dumps(rows, indent=1))
    header = ("# The DCT-domain reading of noise through a JPEG: clean against noisy\n\n"
              "`OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/jpeg_noise_dct.py` "
              f"({len(photos)} val-photos and val photos, Pillow JPEGs 4:2:0; what it reads: the script's docstring)\n\n")
    (args.out / "jpeg_noise_dct.md").write_text(header + table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
