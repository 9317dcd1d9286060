"""Fewer MAP passes at the same quality (issue 11 step 3): PSNR against iterations and seconds.

Runs the restoration protocol (benchmarks/protocol.py) on centre crops of one photo folder for
a list of SolverConfig candidates (fewer Adam iterations, re-shaped schedules, longer tail
averages) and writes benchmarks/results/map_iterations/<folder>_<crop>.{json,md}. Each row
also counts photos the candidate left worse than its degraded input.

    OMP_NUM_THREADS=1 python benchmarks/map_iterations.py --data ../shared/data/val --crop 128 --limit 3
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from map_settings import _bicubic_start, restore_one  # noqa: E402
from metrics import psnr  # noqa: E402
from protocol import TASKS, degrade, list_photos, load_photo, seed_for  # noqa: E402

# (label, overrides of SolverConfig); the first is the reference every other row is compared to.
CANDIDATES = [
    ("150 iters (old default)", {"iters": 150, "warmup": 5, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.25}),
    ("60 iters, same shape", {"iters": 60, "warmup": 5, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.25}),
    ("60 iters, warmup 2", {"iters": 60, "warmup": 2, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.25}),
    ("60 iters, warmup 2, step x1.5", {"iters": 60, "warmup": 2, "final_lr": 0.1, "step_scale": 1.5, "average_tail": 0.25}),
    ("60 iters, warmup 2, tail 0.4", {"iters": 60, "warmup": 2, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.4}),
    ("80 iters, same shape", {"iters": 80, "warmup": 5, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.25}),
    ("100 iters, same shape", {"iters": 100, "warmup": 5, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.25}),
    ("80 iters, warmup 3", {"iters": 80, "warmup": 3, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.25}),
    ("80 iters, warmup 3, step x1.5", {"iters": 80, "warmup": 3, "final_lr": 0.1, "step_scale": 1.5, "average_tail": 0.25}),
    ("100 iters, warmup 3", {"iters": 100, "warmup": 3, "final_lr": 0.1, "step_scale": 1.0, "average_tail": 0.25}),
    ("40 iters, warmup 2, step x1.5", {"iters": 40, "warmup": 2, "final_lr": 0.1, "step_scale": 1.5, "average_tail": 0.25}),
]


def measure(prior, photos, crop, task_name, overrides, torch_device):
    """Restore every photo for one task and candidate: per-photo PSNR, input PSNR and seconds."""
    from flowrt.solve.solver import SolverConfig
    task = TASKS[task_name]
    solver = dataclasses.replace(SolverConfig(), **overrides)
    scores, inputs, seconds = [], [], []
    for photo in photos:
        clean = load_photo(photo, crop)
        reference, encoded = degrade(clean, task, seed_for(task.name, photo.name))
        t0 = time.perf_counter()
        restored, image = restore_one(prior, encoded, task, solver, torch_device)
        seconds.append(time.perf_counter() - t0)
        ref = reference.astype(np.float64) / 255.0
        scores.append(psnr(ref, np.round(restored * 255) / 255.0))
        inputs.append(psnr(ref, _bicubic_start(image.rgb, task.scale, ref.shape)))
    return scores, inputs, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/val")
    ap.add_argument("--model", default=None, help="exported prior folder (default: the packaged one)")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--tasks", default="noise,jpeg,multi")
    ap.add_argument("--candidates", default=None, help="comma-separated indices into CANDIDATES")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "map_iterations"))
    args = ap.parse_args(argv)

    import torch
    from flowrt.prior.folders import load_torch_prior
    torch.set_num_threads(args.threads)
    prior = load_torch_prior(args.model)
    chosen = CANDIDATES if args.candidates is None else [CANDIDATES[int(i)] for i in args.candidates.split(",")]
    photos = list_photos(Path(args.data), args.limit)
    rows = []
    for task_name in args.tasks.split(","):
        for label, overrides in chosen:
            scores, inputs, seconds = measure(prior, photos, args.crop, task_name, overrides, torch.device("cpu"))
            rows.append({"task": task_name, "candidate": label, "overrides": overrides,
                         "psnr": float(np.mean(scores)), "input_psnr": float(np.mean(inputs)),
                         "per_photo": scores, "per_photo_input": inputs,
                         "worse_than_input": int(sum(s < i for s, i in zip(scores, inputs))),
                         "seconds": float(np.mean(seconds))})
            r = rows[-1]
            print(f"{task_name:6s} {label:32s} {r['psnr']:.2f} dB (input {r['input_psnr']:.2f}, "
                  f"{r['worse_than_input']} worse) {r['seconds']:.1f} s", flush=True)
            _write(Path(args.out), rows, args, photos)
    return 0


def _write(out: Path, rows, args, photos) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(args.data).name}_{args.crop}"
    meta = {"data": args.data, "crop": args.crop, "photos": [p.name for p in photos],
            "threads": args.threads, "model": args.model or "packaged default"}
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"# MAP iterations on {len(photos)} photos of {args.data}, {args.crop}x{args.crop} centre crops",
             "", "Mean PSNR (dB); delta against the first candidate of the same task; 'worse' counts photos "
             "below their degraded input (bicubic-upsampled for multi); seconds per crop, one thread.",
             "", "| task | candidate | iters | PSNR | delta | input | worse | s / crop |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    first = {}
    for r in rows:
        ref = first.setdefault(r["task"], r["psnr"])
        lines.append(f"| {r['task']} | {r['candidate']} | {r['overrides'].get('iters', '')} | {r['psnr']:.2f} | "
                     f"{r['psnr'] - ref:+.2f} | {r['input_psnr']:.2f} | {r['worse_than_input']} | {r['seconds']:.1f} |")
    lines += ["", f"Command: `OMP_NUM_THREADS={args.threads} python benchmarks/map_iterations.py --data {args.data} "
              f"--crop {args.crop} --limit {args.limit} --tasks {args.tasks}"
              + (f" --candidates {args.candidates}" if args.candidates else "") + f" --threads {args.threads}`"]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
