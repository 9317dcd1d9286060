"""Noise that went through a JPEG (issue 24, point 6): what ``--sigma auto`` reads, and what it restores.

Centre crops of the val and val-photos photos (never kodak24), Gaussian noise of std S, saved as
Pillow JPEGs (4:2:0) at quality Q. For each: the estimator's reading of the decode (what the plan
used as sigma before ``flowrt.pipeline.jpeg_noise``) and the plan's sigma now (the noise before the
JPEG). Clean crops saved at each quality must still plan no noise term. With ``--restore N``, the
first N val-photos crops at the restore conditions are restored with the packaged prior twice:
``--sigma READING`` (what no flags did before) and no flags (now); PSNR against the clean crop.
Writes jpeg_noise.json and jpeg_noise.md to benchmarks/results/.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nice -n 10 python benchmarks/jpeg_noise.py --restore 5
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402
from protocol import add_gaussian_noise, encode_jpeg, list_photos, load_photo  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SIGMAS, QUALITIES = (10, 15, 25), (70, 80, 90, 95)
CLEAN_QUALITIES = (10, 30, 50, 70, 80, 90, 95)
RESTORE_CASES = ((10, 90), (15, 80), (25, 70))


def plan_of(path: Path):
    from flowrt.pipeline.plan import RestoreOptions
    from flowrt.pipeline.run import prepare_restore
    return prepare_restore(str(path), str(path.with_suffix(".out.png")), RestoreOptions()).plan


def estimates(photos, crop: int, folder: Path) -> list:
    rows = []
    for index, photo in enumerate(photos):
        clean = load_photo(photo, crop)
        for quality in CLEAN_QUALITIES:
            path = folder / f"clean_{index}_{quality}.jpg"
            path.write_bytes(encode_jpeg(clean, quality))
            plan = plan_of(path)
            rows.append({"photo": photo.name, "sigma": 0, "quality": quality, "reading": plan.sigma_estimate,
                         "planned": plan.sigma})
        for sigma in SIGMAS:
            noisy = add_gaussian_noise(clean, sigma, np.random.default_rng(1000 * index + sigma))
            for quality in QUALITIES:
                path = folder / f"n{sigma}_{index}_{quality}.jpg"
                path.write_bytes(encode_jpeg(noisy, quality))
                started = time.perf_counter()
                plan = plan_of(path)
                rows.append({"photo": photo.name, "sigma": sigma, "quality": quality, "reading": plan.sigma_estimate,
                             "planned": plan.sigma, "plan_s": round(time.perf_counter() - started, 2)})
        print(photo.name, flush=True)
    return rows


def restores(photos, crop: int, folder: Path) -> list:
    import flowrt
    prior, rows = flowrt.load_prior(), []
    for index, photo in enumerate(photos):
        clean = load_photo(photo, crop)
        for sigma, quality in RESTORE_CASES:
            noisy = add_gaussian_noise(clean, sigma, np.random.default_rng(1000 * index + sigma))
            path = folder / f"r{sigma}_{index}_{quality}.jpg"
            path.write_bytes(encode_jpeg(noisy, quality))
            now = flowrt.restore(str(path), prior=prior)
            reading = now.plan.sigma_estimate
            # before: the reading was the sigma, and below the JPEG threshold no noise term (as now)
            before = now if now.plan.sigma is None else flowrt.restore(str(path), prior=prior, sigma=round(reading, 1))
            true = flowrt.restore(str(path), prior=prior, sigma=sigma)
            rows.append({"photo": photo.name, "sigma": sigma, "quality": quality, "reading": reading,
                         "planned": now.plan.sigma, "psnr_input": psnr(clean, load_photo(path)),
                         "psnr_before": psnr(clean, before.image), "psnr_now": psnr(clean, now.image),
                         "psnr_true_sigma": psnr(clean, true.image)})
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--restore", type=int, default=0, help="restore this many val-photos crops per case")
    args = parser.parse_args(argv)
    photos = list_photos(DATA / "val-photos") + list_photos(DATA / "val")
    with tempfile.TemporaryDirectory() as tmp:
        rows = estimates(photos, args.crop, Path(tmp))
        restored = restores(list_photos(DATA / "val-photos", args.restore), args.crop, Path(tmp)) if args.restore else []
    report = {"crop": args.crop, "photos": [p.name for p in photos], "estimates": rows, "restores": restored}
    (RESULTS / "jpeg_noise.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "jpeg_noise.md").write_text("\n".join(summary(report, args)) + "\n")
    print("\n".join(summary(report, args)))
    return 0


def summary(report: dict, args) -> list:
    rows = report["estimates"]
    lines = [f"# Noise through a JPEG: --sigma auto on {len(report['photos'])} val / val-photos crops "
             f"({report['crop']} px)", "",
             f"`OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nice -n 10 python benchmarks/jpeg_noise.py --restore {args.restore}`"
             " (a shared 2-core machine; Pillow JPEGs, 4:2:0). 'reading': the estimator on the decode, the sigma "
             "no flags used before; 'planned': the plan's sigma now (the noise before the JPEG); mean [min, max] "
             "over the photos.", "", "| noise | quality | reading | planned | noise term planned |",
             "| --- | --- | --- | --- | --- |"]
    for sigma in (0, *SIGMAS):
        for quality in (CLEAN_QUALITIES if sigma == 0 else QUALITIES):
            cell = [r for r in rows if r["sigma"] == sigma and r["quality"] == quality]
            planned = [r["planned"] for r in cell if r["planned"] is not None]
            lines.append(f"| {sigma} | {quality} | {_stats([r['reading'] for r in cell])} | "
                         f"{_stats(planned) if planned else '-'} | {len(planned)} of {len(cell)} |")
    if report["restores"]:
        lines += ["", "Restores with the packaged prior, PSNR (dB) against the clean crop: input, '--sigma READING' "
                  "(what no flags did before), no flags now, and the true sigma given.", "",
                  "| photo | noise | quality | reading | planned | input | before | now | true sigma |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in report["restores"]:
            lines.append(f"| {r['photo']} | {r['sigma']} | {r['quality']} | {r['reading']:.1f} | {r['planned'] or 0:.1f} | "
                         f"{r['psnr_input']:.2f} | {r['psnr_before']:.2f} | {r['psnr_now']:.2f} | "
                         f"{r['psnr_true_sigma']:.2f} |")
        for key in ("psnr_input", "psnr_before", "psnr_now", "psnr_true_sigma"):
            lines.append(f"- mean {key}: {np.mean([r[key] for r in report['restores']]):.2f}")
    return lines


def _stats(values) -> str:
    return f"{np.mean(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


if __name__ == "__main__":
    sys.exit(main())
