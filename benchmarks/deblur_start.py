"""The splitting start against the denoised start on a deblurring task (not one of the protocol's
three): centre crops blurred by flowrt's own Gaussian kernel (``--blur gaussian:S``), plus rounded
N(0, sigma^2) noise, saved as PNG, restored in-process at the defaults with ``--start split`` (the
default for a blur) and ``--start denoise``. Noise seeds are the protocol's (sha256 of task/name).

    python benchmarks/deblur_start.py --data ../shared/data/val-photos --crop 192 --blur 1.5 --sigma 8

Writes OUT/deblur_start.{json,md} (--out, default benchmarks/results).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402
from protocol import blur_and_noise, list_photos, load_photo, seed_for  # noqa: E402

STARTS = ("split", "denoise")


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def degrade(clean: np.ndarray, blur_std: float, sigma: float, seed: int) -> bytes:
    """``protocol.blur_and_noise`` (flowrt's own kernel, rounded noise), encoded as PNG."""
    return _png(blur_and_noise(clean, blur_std, sigma, seed))


def measure(args) -> dict:
    from flowrt.io.image_file import read_image
    from flowrt.pipeline.plan import RestoreOptions, plan_restoration
    from flowrt.pipeline.region import restore_loaded
    from flowrt.pipeline.source import from_image
    from flowrt.prior.engines import open_engine
    from flowrt.solve.config import SolverConfig
    _, prior = open_engine(None, "auto", "cpu")
    options = RestoreOptions(sigma=args.sigma, blur=f"gaussian:{args.blur}")
    rows = []
    for path in list_photos(args.data, args.limit):
        clean = load_photo(path, args.crop)
        image = read_image(degrade(clean, args.blur, args.sigma, seed_for(f"blur{args.blur}", path.name)))
        plan = plan_restoration(from_image(image), options)
        row = {"photo": path.name, "input_db": round(psnr(clean, image.rgb), 2)}
        for start in STARTS:
            t0 = time.perf_counter()
            out = restore_loaded(image, plan.with_method(SolverConfig(start=start)).with_engine(prior), prior)
            row[f"{start}_db"] = round(psnr(clean, np.round(out * 255).astype(np.uint8)), 2)
            row[f"{start}_s"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        print(row, flush=True)
    means = {key: round(float(np.mean([r[key] for r in rows])), 2) for key in rows[0] if key != "photo"}
    return {"data": str(args.data), "crop": args.crop, "blur": args.blur, "sigma": args.sigma, "rows": rows,
            "mean": means}


def write_report(out: Path, report: dict, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "deblur_start.json").write_text(json.dumps(report, indent=2))
    def line(label: str, r: dict) -> str:
        return (f"| {label} | {r['input_db']} | {r['split_db']} ({r['split_s']} s) | "
                f"{r['denoise_db']} ({r['denoise_s']} s) |")
    lines = [line(r["photo"], r) for r in report["rows"]] + [line("**mean**", report["mean"])]
    (out / "deblur_start.md").write_text(
        f"# Deblurring: the splitting start against the denoised start\n\n{report['crop']}x{report['crop']} centre "
        f"crops of `{report['data']}`, Gaussian blur std {report['blur']} px (flowrt's own kernel), noise sigma "
        f"{report['sigma']}, PNG; flowrt defaults in-process (both cores), PSNR dB (seconds).\n\n"
        "| photo | input | --start split (default) | --start denoise |\n| --- | --- | --- | --- |\n"
        + "\n".join(lines) + f"\n\nCommand: `{command}`\n")


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/val-photos"))
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--blur", type=float, default=1.5, help="Gaussian blur std in pixels")
    ap.add_argument("--sigma", type=float, default=8.0, help="noise std, 0-255 scale")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    report = measure(args)
    command = "python benchmarks/deblur_start.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_report(args.out, report, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
