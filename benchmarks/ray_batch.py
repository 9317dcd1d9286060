"""``flowrt batch`` locally and on a Ray cluster on this machine (issue 15): wall time, per-task
overhead, prior loads.

    RAY_USAGE_STATS_ENABLED=0 python benchmarks/ray_batch.py --out benchmarks/results

Makes ``--images`` synthetic noisy photos (``--size`` square PNGs, noise sigma 15), restores them
with the packaged prior (``--iters`` MAP iterations, ``--sigma 15``) three ways, each on a fresh
cluster and one torch thread per process:
  * local: ``run_batch`` in this process (the prior loaded once, as ``flowrt batch`` does), run
    twice: ``cold`` (the prior's load and torch's first calls included) and ``warm``;
  * Ray with 1 and with 2 worker CPUs: ``run_batch_on_ray`` (driver writes) on ``ray.init`` bound to
    127.0.0.1; the batch is run twice on the same cluster: ``cold`` (workers start, import torch
    and load the prior) and ``warm`` (the same workers again).
Per-task overhead (warm run) = (workers x wall - time spent inside tasks) / tasks: what a worker
slot spends outside restoring (scheduling, moving the image and the result, the driver's writes).
A trivial task's round trip is measured too. Prior loads are counted by the workers themselves
(``flowrt.distributed.worker``). Every Ray output is checked byte-identical to the local one.
Writes results/ray_batch.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_photos(folder: Path, count: int, size: int) -> None:
    """``count`` smooth colour waves plus N(0, 15^2) noise, 8-bit PNG, fixed seeds."""
    from PIL import Image
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(count):
        rng = np.random.default_rng(i)
        angle = rng.uniform(0, np.pi)
        along = xx * np.cos(angle) + yy * np.sin(angle)
        clean = np.stack([128 + 70 * np.sin(0.15 * along + rng.uniform(0, 6.3)) for _ in range(3)], axis=2)
        noisy = np.clip(np.round(clean + rng.normal(0, 15, clean.shape)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"photo{i:02d}.png")


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def options(iters: int):
    import dataclasses
    from flowrt.pipeline.plan import RestoreOptions
    from flowrt.solve.solver import SolverConfig
    return RestoreOptions(sigma=15.0, solver=dataclasses.replace(SolverConfig(), iters=iters), device="cpu")


def run_local(src: Path, out: Path, iters: int) -> dict:
    from flowrt.pipeline.batch import BatchJob, run_batch
    from flowrt.pipeline.run import TilingOptions, model_key
    from flowrt.prior.engines import load_prior
    import torch
    torch.set_num_threads(1)
    result = {"workers": 1}
    t0 = time.perf_counter()
    prior = load_prior(None, "auto", torch.device("cpu"))
    result["prior_load_s"] = round(time.perf_counter() - t0, 2)
    for run in ("cold", "warm"):  # cold: the prior's load and torch's first calls included
        t0 = time.perf_counter() if run == "warm" else t0
        summary = run_batch(BatchJob.plan(str(src), str(out / run)), options(iters), prior,
                            report=lambda _: None, tiling=TilingOptions(), model=model_key(None))
        assert not summary.failed, summary.failed
        result[run] = {"wall_s": round(time.perf_counter() - t0, 2), "prior_loads": 1}
    return result


def run_ray(src: Path, out_root: Path, iters: int, cpus: int, reference: dict) -> dict:
    import ray
    from flowrt.distributed.cluster import RaySettings
    from flowrt.distributed.ray_batch import run_batch_on_ray
    from flowrt.distributed.worker import PriorSpec
    from flowrt.pipeline.batch import BatchJob
    from flowrt.pipeline.run import TilingOptions, model_key
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=200 * 1024 * 1024,
             _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
    result = {"cluster_start_s": round(time.perf_counter() - t0, 2), "workers": cpus}
    try:
        spec = PriorSpec(None, "auto", "cpu", model_key(None))
        for run in ("cold", "warm"):
            out = out_root / f"ray{cpus}_{run}"
            t0 = time.perf_counter()
            report = run_batch_on_ray(BatchJob.plan(str(src), str(out)), options(iters), TilingOptions(), spec,
                                      RaySettings(address="auto"), report=lambda _: None)
            wall = time.perf_counter() - t0
            assert not report.summary.failed, report.summary.failed
            assert tree(out) == reference, f"Ray ({cpus} workers, {run}) differs from the local batch"
            inside = sum(report.task_seconds)
            result[run] = {"wall_s": round(wall, 2), "task_s_sum": round(inside, 2), "tasks": len(report.task_seconds),
                           "overhead_per_task_s": round((cpus * wall - inside) / len(report.task_seconds), 3),
                           "prior_loads": report.prior_loads, "worker_processes": report.workers}
        result["trivial_task_round_trip_ms"] = round(_round_trip(ray) * 1000, 2)
    finally:
        ray.shutdown()
    return result


def _round_trip(ray, n: int = 50) -> float:
    """Seconds for one no-op task submitted and fetched, one after another (warm workers)."""
    noop = ray.remote(num_cpus=1)(lambda: None)
    ray.get(noop.remote())
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(noop.remote())
    return (time.perf_counter() - t0) / n


def markdown(data: dict) -> str:
    a = data["args"]
    one, two = data["ray1"]["warm"], data["ray2"]["warm"]
    lines = [f"# flowrt batch locally and on Ray ({a['images']} images {a['size']}x{a['size']}, "
             f"packaged prior, --iters {a['iters']})", "",
             f"Machine: {data['cpus']} CPU cores shared with other sessions (load average {data['load_before']} "
             f"before, {data['load_after']} after); one torch thread per process. Command: `{data['command']}`", "",
             "| run | workers | wall s | sum of task s | overhead / task s | prior loads |",
             "| --- | --- | --- | --- | --- | --- |",
             f"| local cold (`run_batch`) | 1 | {data['local']['cold']['wall_s']} | - | - | 1 |",
             f"| local warm (`run_batch`) | 1 | {data['local']['warm']['wall_s']} | - | - | 1 (the same) |"]
    for key in ("ray1", "ray2"):
        r = data[key]
        for run in ("cold", "warm"):
            lines.append(f"| Ray {run} | {r['workers']} | {r[run]['wall_s']} | {r[run]['task_s_sum']} | "
                         f"{r[run]['overhead_per_task_s']} | {r[run]['prior_loads']} |")
    lines += ["", f"Cluster start (ray.init): {data['ray1']['cluster_start_s']} s (1 CPU), "
              f"{data['ray2']['cluster_start_s']} s (2 CPUs). Trivial task round trip: "
              f"{data['ray1']['trivial_task_round_trip_ms']} ms / {data['ray2']['trivial_task_round_trip_ms']} ms.",
              "Local cold includes loading the prior and torch's first calls. Ray cold = first batch on a fresh cluster (workers start and import torch: in the wall time only; "
              "each worker's first task also loads the prior: in its task time); warm = the same batch again on the same workers "
              "(prior loads stay at one per worker process). Every Ray output was byte-identical to the local one.",
              "", f"2 workers against 1 (warm): speed-up x{one['wall_s'] / two['wall_s']:.2f} in wall time; time inside "
              f"tasks x{two['task_s_sum'] / one['task_s_sum']:.2f} (above 1: the two workers did not each get a whole "
              "core, i.e. the machine's other load, not Ray, set the speed-up). Per-task overhead and prior loads "
              "are the figures that carry over to a real cluster."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch loads, here and in the workers (Ray's own default)
    data = {"args": vars(args) | {"out": str(args.out)}, "cpus": os.cpu_count(), "python": platform.python_version(),
            "command": "python " + " ".join(sys.argv), "load_before": round(os.getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(tmp / "in", args.images, args.size)
        data["local"] = run_local(tmp / "in", tmp / "local", args.iters)
        reference = tree(tmp / "local" / "warm")
        assert tree(tmp / "local" / "cold") == reference
        for cpus in (1, 2):
            data[f"ray{cpus}"] = run_ray(tmp / "in", tmp, args.iters, cpus, reference)
    data["load_after"] = round(os.getloadavg()[0], 1)
    import ray
    data["ray"] = ray.__version__
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_batch.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "ray_batch.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
