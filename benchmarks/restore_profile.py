"""Where a default restore's time goes (issue 11, step 1), on the default engine (ort, numpy loop).

    python benchmarks/restore_profile.py [--sizes 256 512 1024] [--threads 1 2] [--repeats 3]

For each task of benchmarks/protocol.py (noise 25, JPEG q20, multi) and each output size, a centre
crop of one val photo is degraded, planned as the CLI plans it, and each phase of the restore is
timed on its own: process start-up (a fresh interpreter importing what a restore imports), model load, image read and
write, the denoised start, one prior pass (-log p and its gradient, prior_grad.onnx), one data-term
pass (-log p(y|x) and its gradient), one discrepancy check, one Adam update with the tail average.
Per iteration = prior + data + Adam (+ a tenth of a discrepancy check); the whole restore is then
start-up-free phases + iterations x per-iteration, reported per megapixel of output. Each thread
count runs in a fresh process with OMP_NUM_THREADS, NUMBA_NUM_THREADS and ORT's intra-op threads set.
Writes results/restore_profile.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import TASKS, degrade, load_photo, seed_for  # noqa: E402

PHASES = ("model_load", "read", "start", "prior", "data", "discrepancy", "adam", "write")


def _best(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls, seconds (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def profile_case(photo: Path, task_name: str, side: int, threads: int, repeats: int) -> dict:
    """Seconds per phase for one task at one output size (runs in the child process)."""
    import tempfile

    from flowrt.io.image_file import read_image, write_image
    from flowrt.numeric.chain import build_forward_model
    from flowrt.pipeline.plan import RestoreOptions, plan_restoration
    from flowrt.pipeline.region import make_start
    from flowrt.pipeline.source import from_image
    from flowrt.prior.ort_gradient import OrtPriorGradient
    from flowrt.solve.numpy_solver import Adam

    task = TASKS[task_name]
    clean = load_photo(photo, side)
    _, encoded = degrade(clean, task, seed_for(task.name, photo.name))
    out = {}
    t0 = time.perf_counter()
    prior = OrtPriorGradient(None, threads=threads)
    out["model_load"] = time.perf_counter() - t0
    out["read"] = _best(lambda: read_image(encoded), repeats)
    image = read_image(encoded)
    opts = RestoreOptions(sigma=task.sigma if task.sigma > 0 else "auto", scale=task.scale)
    plan = plan_restoration(from_image(image), opts)
    jpeg = plan.jpeg.for_region(image.rgb, (0, image.rgb.shape[0], 0, image.rgb.shape[1])) if plan.jpeg else None
    fm = build_forward_model(image.rgb, sigma=plan.sigma, jpeg=jpeg, scale=plan.scale, degradations=plan.degradations,
                             mask=plan.mask, greyscale=image.mode == "L")
    greyscale = image.mode == "L"
    # the plan's own start (denoised, split or none), as restore_region makes it
    out["start"] = _best(lambda: make_start(fm, plan, greyscale), repeats)
    x = make_start(fm, plan, greyscale)
    x = np.clip(fm.initial_estimate(), 0, 1).astype(np.float32) if x is None else x.astype(np.float32)
    out["prior"] = _best(lambda: prior.nll_and_grad(x), repeats)
    out["data"] = _best(lambda: fm.nll_and_grad(x), repeats)
    out["discrepancy"] = _best(lambda: (fm.nll(x), fm.expected_nll(x)), repeats)
    adam, grad, total = Adam(x), np.ones_like(x), np.zeros_like(x)
    param = x.copy()

    def update():
        adam.step(param, grad, 1e-3)
        np.clip(param, 0, 1, out=param)
        np.add(total, param, out=total)
    out["adam"] = _best(update, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        rgb = np.clip(x[0].transpose(1, 2, 0), 0, 1)
        out["write"] = _best(lambda: write_image(Path(tmp) / "o.png", rgb, image), repeats)
    out["start_kind"] = plan.start.kind
    out["iters"] = plan.solver.iters
    out["output_pixels"] = int(x.shape[-1] * x.shape[-2])
    return out


def _child(args) -> int:
    rows = []
    for side in args.sizes:
        for task in args.tasks:
            rows.append(dict(task=task, side=side, threads=args.child_threads,
                             **profile_case(args.data / args.photo, task, side, args.child_threads, args.repeats)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps(rows))
    return 0


# What a default restore imports before it reads a pixel (the CLI, the pipeline, ORT, numba kernels).
RESTORE_IMPORTS = ("import flowrt.cli.main, flowrt.pipeline.run, flowrt.prior.ort_gradient, flowrt.numeric.chain, "
                   "flowrt.solve.numpy_solver, flowrt.denoise")


def _startup_seconds(repeats: int) -> float:
    """A fresh interpreter importing what a restore imports."""
    return _best(lambda: subprocess.run([sys.executable, "-c", RESTORE_IMPORTS], capture_output=True, check=True),
                 repeats)


def _summarise(row: dict, startup: float) -> dict:
    per_iter = row["prior"] + row["data"] + row["adam"] + row["discrepancy"] / 10
    whole = startup + row["model_load"] + row["read"] + row["start"] + row["iters"] * per_iter + row["write"]
    mp = row["output_pixels"] / 1e6
    return dict(row, startup=startup, per_iteration=per_iter, restore_estimate=whole, per_mp=whole / mp,
                per_iteration_per_mp=per_iter / mp)


def _markdown(rows, args) -> str:
    head = ("# Where a default restore's time goes (ort engine, this CPU)\n\n"
            f"`python benchmarks/restore_profile.py --sizes {' '.join(map(str, args.sizes))} --threads "
            f"{' '.join(map(str, args.threads))} --repeats {args.repeats}`; centre crops of `{args.photo}`, the "
            "protocol's degradations; each phase the fastest of its repeats, seconds. `restore` adds start-up, "
            "model load, read, start, iterations x per-iteration and write.\n\n"
            "| task | side | threads | start-up | load | read | start (denoise) | prior | data | discrepancy "
            "| Adam | per iteration | iterations | restore | s / MP | iteration s / MP |\n" + "| --- " * 16 + "|\n")
    lines = [f"| {r['task']} | {r['side']} | {r['threads']} | {r['startup']:.2f} | {r['model_load']:.2f} | "
             f"{r['read']:.3f} | {r['start']:.2f} | {r['prior']:.3f} | {r['data']:.3f} | {r['discrepancy']:.3f} | "
             f"{r['adam']:.4f} | {r['per_iteration']:.3f} | {r['iters']} | {r['restore_estimate']:.1f} | "
             f"{r['per_mp']:.1f} | {r['per_iteration_per_mp']:.2f} |" for r in rows]
    return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/val"))
    ap.add_argument("--photo", default="plasma_Kite.png")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--tasks", nargs="+", default=["noise", "jpeg", "multi"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    if args.child_threads is not None:
        return _child(args)
    startup = _startup_seconds(args.repeats)
    rows = []
    for n in args.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(n), NUMBA_NUM_THREADS=str(n))
        cmd = [sys.executable, __file__, "--child-threads", str(n), "--data", str(args.data), "--photo", args.photo,
               "--repeats", str(args.repeats), "--sizes", *map(str, args.sizes), "--tasks", *args.tasks]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        rows += [_summarise(r, startup) for r in json.loads(done.stdout.strip().splitlines()[-1])]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restore_profile.json").write_text(json.dumps(dict(rows=rows, load_average=os.getloadavg()), indent=1))
    (args.out / "restore_profile.md").write_text(_markdown(rows, args))
    print(_markdown(rows, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
