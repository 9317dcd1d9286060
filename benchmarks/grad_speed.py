"""The MAP prior gradient on ONNX Runtime against torch eager: -log p(x) and d/dx in one call.

At --size (default 512x512, batch 1), for each thread count in --threads: ``OrtPriorGradient.nll_and_grad``
(prior_grad.onnx, no spinning threads) against torch eager ``log_prob`` forward + backward on
the same folder's model.pt (float32, frozen), median and min of --repeats after --warmup, the two
taking turns (benchmarks/onnx_speed.py's round robin), and the gradients' agreement. Records the
load average (the machine is shared). Writes benchmarks/results/grad_speed.json and .md. Usage:
    python benchmarks/grad_speed.py [--model flowrt/models/default] [--threads 1 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

from flowrt.prior.folders import load_torch_prior, resolve_model_dir
from flowrt.prior.ort_gradient import OrtPriorGradient

from onnx_speed import RESULTS, timed_round_robin


def measure(folder: Path, size, threads: int, warmup: int, repeats: int) -> dict:
    """Timings and agreement at one thread count."""
    torch.set_num_threads(threads)
    model = load_torch_prior(folder)
    ort = OrtPriorGradient(folder, device="cpu", threads=threads)
    x = np.random.default_rng(0).uniform(0.2, 0.8, (1, 3) + tuple(size)).astype(np.float32)

    def torch_call():
        xt = torch.from_numpy(x).requires_grad_(True)
        (-model.log_prob(xt)).sum().backward()
        return xt.grad.numpy()

    times = timed_round_robin({"ort": lambda: ort.nll_and_grad(x), "torch": torch_call}, warmup, repeats)
    grad_ort, grad_torch = ort.nll_and_grad(x)[1], torch_call()
    rel = float(np.abs(grad_ort - grad_torch).max() / np.abs(grad_torch).max())
    return {"threads": threads, "ort": times["ort"], "torch_eager": times["torch"],
            "speedup_median": round(times["torch"]["median_ms"] / times["ort"]["median_ms"], 2),
            "grad_max_rel_diff": float(f"{rel:.3g}")}


def write(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "grad_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Prior gradient (nll and d nll/dx) at {result['size']}, batch 1: ORT against torch eager",
             "", f"Model: `{result['model']}`; {result['cpu']}; load average before: {result['load_before']}, "
             f"after: {result['load_after']}; commit {result['commit']}. Median (min) of {result['repeats']} "
             "repeats after a warm-up, the two engines taking turns, same run.", "",
             "| threads | ORT nll_and_grad ms | torch log_prob fwd+bwd ms | torch / ORT | max rel diff of grad |",
             "| --- | --- | --- | --- | --- |"]
    for r in result["runs"]:
        lines.append(f"| {r['threads']} | {r['ort']['median_ms']} ({r['ort']['min_ms']}) | "
                     f"{r['torch_eager']['median_ms']} ({r['torch_eager']['min_ms']}) | {r['speedup_median']}x | "
                     f"{r['grad_max_rel_diff']:.2g} |")
    lines += ["", "Regenerate: `" + result["command"] + "`", ""]
    (RESULTS / "grad_speed.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="exported folder with gradient graphs (default: packaged)")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--threads", type=int, nargs="+", default=(1, 2))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = resolve_model_dir(args.model)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load_before = round(os.getloadavg()[0], 2)
    runs = [measure(folder, args.size, t, args.warmup, args.repeats) for t in args.threads]
    write({"size": f"{args.size[0]}x{args.size[1]}", "model": str(args.model or "packaged default"),
           "cpu": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
           "load_before": load_before, "load_after": round(os.getloadavg()[0], 2), "commit": commit,
           "repeats": args.repeats, "runs": runs,
           "command": f"OMP_NUM_THREADS=1 python benchmarks/grad_speed.py --size {args.size[0]} {args.size[1]} "
                      f"--threads {' '.join(map(str, args.threads))} --repeats {args.repeats}"})


if __name__ == "__main__":
    main()
