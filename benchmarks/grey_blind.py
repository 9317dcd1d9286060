"""Blind defaults on grey photos (issue 13 item 3): the noise estimate and the restore it drives.

For each photo of a folder: a centre crop, converted to grey (Pillow "L"), plus Gaussian noise of
std --sigma (clip, round, 8-bit grey PNG). Reports
  * the noise estimate before this branch (the channel-mean estimator with its sqrt(3) gain, copied
    below) and now (flowrt.estimate_noise), on the grey file and on the colour crop with the same noise;
  * PSNR against the clean grey crop of `flowrt restore` with --sigma auto, with the true sigma, and
    with --sigma set to the old estimator's reading (what --sigma auto did before this branch) (the
    installed CLI in a child process, one thread);
  * the wall time of `flowrt restore CLEAN.png -o OUT.png` (a child process, start-up included) on
    the clean full-size photo and whether it said "nothing to restore".
Writes results/grey_blind.{json,md}.

    python benchmarks/grey_blind.py --data ../shared/data/val-photos --crop 192 --sigma 20
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402


def estimate_before(rgb: np.ndarray) -> float:
    """The estimator this branch replaced (flowrt/pipeline/noise_level.py at 059c12d), for the record."""
    from flowrt.pipeline.noise_level import _LAPLACE_DIFF, _SOBEL_X, _filter3
    img = np.asarray(rgb, dtype=np.float64)
    gain = np.sqrt(3.0) if img.ndim == 3 and img.shape[2] == 3 else 1.0
    img = img.mean(axis=2) if img.ndim == 3 else img
    response = _filter3(img, _LAPLACE_DIFF)
    grad = np.hypot(_filter3(img, _SOBEL_X), _filter3(img, _SOBEL_X.T))
    values = response[grad <= np.quantile(grad, 0.3)]
    mad = np.median(np.abs(values - np.median(values)))
    return float(1.4826 * mad / 6.0 * gain * 255.0)


def seeded(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def centre_crop(image: Image.Image, side: int) -> Image.Image:
    w, h = image.size
    side = min(side, w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def cli(*args: str) -> tuple:
    """(seconds, stderr) of `python -m flowrt.cli.main ARGS` on one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flowrt.cli.main", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return seconds, proc.stderr.strip()


def one_photo(path: Path, crop: int, sigma: float, work: Path) -> dict:
    import flowrt
    photo = Image.open(path).convert("RGB")
    colour = np.asarray(centre_crop(photo, crop), np.float64)
    grey = np.asarray(centre_crop(photo, crop).convert("L"), np.float64)
    rng = seeded(f"grey_blind/{path.name}")
    noisy_grey = np.clip(np.round(grey + rng.normal(0, sigma, grey.shape)), 0, 255).astype(np.uint8)
    noisy_colour = np.clip(np.round(colour + rng.normal(0, sigma, colour.shape)), 0, 255).astype(np.uint8)
    src = work / f"{path.stem}_grey{sigma:g}.png"
    Image.fromarray(noisy_grey).save(src)
    row = {"photo": path.name, "crop": grey.shape[0], "sigma": sigma,
           "estimate_before_grey": estimate_before(np.repeat(noisy_grey[..., None] / 255.0, 3, axis=2)),
           "estimate_now_grey": flowrt.estimate_noise(src),
           "estimate_before_colour": estimate_before(noisy_colour / 255.0),
           "estimate_now_colour": flowrt.estimate_noise(noisy_colour),
           "psnr_input": psnr(grey / 255.0, noisy_grey / 255.0)}
    old = f"{row['estimate_before_grey']:.2f}"
    for label, flags in (("auto", []), ("true", ["--sigma", f"{sigma:g}"]), ("before", ["--sigma", old])):
        out = work / f"{path.stem}_{label}.png"
        row[f"seconds_{label}"], _ = cli("restore", str(src), "-o", str(out), "-q", *flags)
        row[f"psnr_{label}"] = psnr(grey / 255.0, np.asarray(Image.open(out), np.float64) / 255.0)
    clean = work / f"{path.stem}_clean.png"
    photo.save(clean)
    row["clean_size"] = list(photo.size)
    row["clean_seconds"], said = cli("restore", str(clean), "-o", str(work / f"{path.stem}_clean_out.png"))
    row["clean_said_nothing_to_restore"] = "nothing to restore" in said
    row["clean_line"] = said
    return row


def markdown(rows: list, args) -> str:
    lines = [f"# Blind defaults on grey photos (issue 13)", "",
             f"`python benchmarks/grey_blind.py --data {args.data} --crop {args.crop} --sigma {args.sigma:g}`; "
             "centre crops converted to grey, Gaussian noise, 8-bit PNG; restores by the CLI with its "
             "defaults (default prior, 150 iterations), one thread.", "",
             "| photo | est. grey before | est. grey now | est. colour before | est. colour now | PSNR in | "
             "PSNR auto before | PSNR --sigma auto | PSNR true sigma | clean photo: s | nothing to restore |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['photo']} | {r['estimate_before_grey']:.1f} | {r['estimate_now_grey']:.1f} | "
                     f"{r['estimate_before_colour']:.1f} | {r['estimate_now_colour']:.1f} | {r['psnr_input']:.2f} | "
                     f"{r['psnr_before']:.2f} | {r['psnr_auto']:.2f} | {r['psnr_true']:.2f} | {r['clean_seconds']:.2f} "
                     f"({r['clean_size'][0]}x{r['clean_size'][1]}) | {r['clean_said_nothing_to_restore']} |")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in
            ("estimate_before_grey", "estimate_now_grey", "psnr_before", "psnr_auto", "psnr_true", "clean_seconds")}
    lines += ["", f"Means: grey estimate {mean['estimate_before_grey']:.1f} before, {mean['estimate_now_grey']:.1f} "
              f"now (true {args.sigma:g}); PSNR {mean['psnr_before']:.2f} dB with the old auto estimate, "
              f"{mean['psnr_auto']:.2f} with --sigma auto now, "
              f"{mean['psnr_true']:.2f} with the true sigma; a clean photo returned in {mean['clean_seconds']:.2f} s "
              "(child process, start-up included)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/val-photos")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--sigma", type=float, default=20.0)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    photos = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".png", ".jpg", ".tif"))
    photos = photos[: args.limit] if args.limit else photos
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for path in photos:
            rows.append(one_photo(path, args.crop, args.sigma, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    (out / "grey_blind.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    (out / "grey_blind.md").write_text(markdown(rows, args))


if __name__ == "__main__":
    main()
