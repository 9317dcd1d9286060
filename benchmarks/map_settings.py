"""Choose the MAP defaults by measurement: image against latent space, lambda, iterations.

Runs the restoration protocol (benchmarks/protocol.py: noise, jpeg, multi) on centre
crops of validation photos, in-process with the library (one prior load), for a grid
of SolverConfig variants, and writes benchmarks/results/map_settings.{json,md}.

    python benchmarks/map_settings.py --data ../shared/data/val --crop 192 --limit 4
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402
from protocol import TASKS, degrade, list_photos, load_photo, seed_for  # noqa: E402

# (label, overrides of SolverConfig); the first is the shipped default.
VARIANTS = [
    ("image, default", {}),
    ("image, lam 0.1", {"lam": 0.1}),
    ("image, lam 1.0", {"lam": 1.0}),
    ("image, no coarse prior", {"coarse_prior": 0.0}),
    ("image, coarse prior 1.0", {"coarse_prior": 1.0}),
    ("image, no discrepancy rule", {"discrepancy": 0.0}),
    ("image, discrepancy 1.0", {"discrepancy": 1.0}),
    ("image, 50 iters", {"iters": 50}),
    ("image, 200 iters", {"iters": 200}),
    ("latent, warm start", {"space": "latent"}),
    ("latent, from T^-1(y)", {"space": "latent", "latent_warm_start": 0.0}),
]


def restore_one(prior, observed_file: bytes, task, solver, torch_device):
    from flowrt.io.image_file import read_image
    from flowrt.pipeline.plan import RestoreOptions, plan_restoration
    from flowrt.pipeline.region import restore_loaded
    from flowrt.pipeline.source import from_image
    image = read_image(observed_file)
    opts = RestoreOptions(sigma=task.sigma if task.sigma > 0 else "auto", scale=task.scale, solver=solver)
    plan = plan_restoration(from_image(image), opts)
    return restore_loaded(image, plan.with_engine(prior, torch_device), prior, device=torch_device), image


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/val")
    ap.add_argument("--model", default=None, help="exported prior folder (default: the packaged one)")
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--tasks", default="noise,jpeg,multi")
    ap.add_argument("--variants", default=None, help="comma-separated indices into VARIANTS")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)

    import torch
    from flowrt.prior.folders import load_torch_prior
    from flowrt.solve.solver import SolverConfig
    torch.set_num_threads(args.threads)
    prior = load_torch_prior(args.model)
    chosen = VARIANTS if args.variants is None else [VARIANTS[int(i)] for i in args.variants.split(",")]
    photos = list_photos(Path(args.data), args.limit)
    rows = []
    for task_name in args.tasks.split(","):
        task = TASKS[task_name]
        for label, overrides in chosen:
            solver = dataclasses.replace(SolverConfig(), **overrides)
            scores, baseline, seconds = [], [], []
            for photo in photos:
                clean = load_photo(photo, args.crop)
                reference, encoded = degrade(clean, task, seed_for(task.name, photo.name))
                t0 = time.perf_counter()
                restored, image = restore_one(prior, encoded, task, solver, torch.device("cpu"))
                seconds.append(time.perf_counter() - t0)
                ref = reference.astype(np.float64) / 255.0
                scores.append(psnr(ref, np.round(restored * 255) / 255.0))
                start = _bicubic_start(image.rgb, task.scale, ref.shape)
                baseline.append(psnr(ref, start))
            rows.append({"task": task_name, "variant": label, "overrides": overrides,
                         "psnr": float(np.mean(scores)), "input_psnr": float(np.mean(baseline)),
                         "per_photo": [float(s) for s in scores], "seconds": float(np.mean(seconds))})
            print(f"{task_name:6s} {label:24s} {rows[-1]['psnr']:.2f} dB (input {rows[-1]['input_psnr']:.2f}) "
                  f"{rows[-1]['seconds']:.1f} s", flush=True)
    _write(Path(args.out), rows, args, photos)
    return 0


def _bicubic_start(rgb: np.ndarray, scale: int, shape) -> np.ndarray:
    if scale == 1:
        return np.round(rgb * 255) / 255.0
    from PIL import Image
    small = Image.fromarray(np.round(rgb * 255).astype(np.uint8))
    return np.asarray(small.resize((shape[1], shape[0]), Image.BICUBIC), dtype=np.float64) / 255.0


def _write(out: Path, rows, args, photos) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"crop": args.crop, "photos": [p.name for p in photos], "threads": args.threads,
            "model": args.model or "packaged default"}
    (out / "map_settings.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"# MAP settings on {len(photos)} val photos, {args.crop}x{args.crop} centre crops",
             "", "Mean PSNR (dB) after restoration; 'input' is the degraded observation (bicubic-upsampled for multi).",
             "", "| task | variant | PSNR | input | s / crop |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['variant']} | {r['psnr']:.2f} | {r['input_psnr']:.2f} | {r['seconds']:.1f} |")
    lines += ["", f"Command: `python benchmarks/map_settings.py --data {args.data} --crop {args.crop} "
              f"--limit {args.limit} --tasks {args.tasks}" + (f" --variants {args.variants}" if args.variants else "")
              + f" --threads {args.threads}`"]
    (out / "map_settings.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
