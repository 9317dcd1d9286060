"""Training throughput of the default TrainConfig and a 300-step smoke run whose val bits/dim must fall.

Runs the real command line and reads its metrics.jsonl:
  1. throughput: ``flowrt train --steps 40`` with the default config (patch 64, batch 16),
     once per thread count in --throughput-threads (default: 1, then torch's default of one
     per core), patches/s overall and between the first and last logged step;
  2. smoke: ``flowrt train --steps 300 --threads 1 --out runs/smoke``, validating every
     50 steps (validation does not touch the model's training state, so this changes
     nothing but how often val bits/dim is measured).
Writes benchmarks/results/training.json and training.md. Usage:
    python benchmarks/train_throughput.py [--data DIR] [--val DIR] [--note TEXT] [--replace]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    p.add_argument("--val", default=str(ROOT.parent / "shared" / "data" / "val"))
    p.add_argument("--smoke-out", default=str(ROOT / "runs" / "smoke"))
    p.add_argument("--throughput-steps", type=int, default=40)
    p.add_argument("--throughput-threads", default="1,0",
                   help="Comma-separated torch thread counts to time (0: torch's default, one per core).")
    p.add_argument("--smoke-steps", type=int, default=300)
    p.add_argument("--note", default="", help="What else ran on the machine meanwhile (goes into the report).")
    p.add_argument("--replace", action="store_true", help="Delete an existing smoke run folder first.")
    p.add_argument("--skip-smoke", action="store_true")
    return p.parse_args(argv)


def run_train(args: list, log: Path) -> tuple:
    """Run ``python -m flowrt.cli.main train ARGS`` (progress bar to ``log``).

    Returns (wall seconds, CPU seconds of the child). On a shared machine the CPU time
    is the steadier figure: it does not grow when other jobs take the cores.
    """
    cmd = [sys.executable, "-m", "flowrt.cli.main", "train", *map(str, args)]
    t0, cpu0 = time.perf_counter(), _children_cpu()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"training failed ({proc.returncode}); see {log}")
    return time.perf_counter() - t0, _children_cpu() - cpu0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def metrics(out: Path) -> list:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def throughput(args, threads: int) -> dict:
    """Default config for N steps in a scratch folder; figures from the logged patches_per_s."""
    scratch = Path(tempfile.mkdtemp(prefix="flowrt_thr_"))
    try:
        out = scratch / "run"
        cmd = ["--steps", args.throughput_steps, "--out", out, "--data", args.data, "--val", args.val,
               "--threads", threads]
        wall, cpu = run_train(cmd, scratch / "log.txt")
        rows = [r for r in metrics(out) if "patches_per_s" in r]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    first, last = rows[0], rows[-1]
    # patches_per_s is cumulative from step 1; two points give the rate without the warm-up steps.
    batch = 16
    t_first = first["step"] * batch / first["patches_per_s"]
    t_last = last["step"] * batch / last["patches_per_s"]
    return {
        "command": "flowrt train --steps %d --out SCRATCH --data DATA --val VAL --threads %d"
                   % (args.throughput_steps, threads),
        "threads": threads or _default_threads(),
        "config": "TrainConfig() defaults: levels 3, steps_per_level 4, width 64, patch 64, batch 16",
        "steps": last["step"],
        "patches_per_s": round(last["patches_per_s"], 2),
        "patches_per_s_after_warmup": round((last["step"] - first["step"]) * batch / (t_last - t_first), 2),
        "window": [first["step"], last["step"]],
        "step_ms": round(1000 * (t_last - t_first) / (last["step"] - first["step"]), 1),
        "wall_s": round(wall, 1),
        # Whole process (start-up, image decoding, the closing validation included): a lower bound.
        "cpu_s": round(cpu, 1),
        "patches_per_cpu_s": round(last["step"] * batch / cpu, 2),
    }


def smoke(args) -> dict:
    out = Path(args.smoke_out)
    if out.exists():
        if not args.replace:
            sys.exit(f"{out} exists; pass --replace to train it again from scratch")
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write("run:\n  val_every: 50\n")
        config = fh.name
    try:
        cmd = ["--config", config, "--data", args.data, "--val", args.val, "--steps", args.smoke_steps,
               "--out", out, "--threads", 1]
        wall, cpu = run_train(cmd, out.parent / "smoke.log")
    finally:
        os.unlink(config)
    rows = metrics(out)
    vals = [(r["step"], round(r["val_bpd"], 4)) for r in rows if "val_bpd" in r]
    return {
        "command": f"flowrt train --config VAL_EVERY_50.yaml --data DATA --val VAL --steps {args.smoke_steps} "
                   f"--out {os.path.relpath(out, ROOT)} --threads 1",
        "val_bpd": vals,
        "val_bpd_first": vals[0][1],
        "val_bpd_last": vals[-1][1],
        "val_falls": vals[-1][1] < vals[0][1],
        "train_nll_bpd_first": round(rows[0]["nll_bpd"], 4),
        "train_nll_bpd_last": round(rows[-1]["nll_bpd"], 4),
        "patches_per_s": round(rows[-1]["patches_per_s"], 2),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
    }


def _default_threads() -> int:
    import torch
    return torch.get_num_threads()


def environment(note: str) -> dict:
    import torch
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "note": note,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Training throughput and smoke run",
        "",
        f"Machine: {env['machine']}, torch {env['torch']}, {env['date']}. "
        f"Load average at start: {env['load_average_at_start']}. {env['note']}",
        "",
        "## Throughput, default config (patch 64, batch 16)",
        "",
        "| command | torch threads | steps | patches/s (all steps) | patches/s (after first log) | ms/step "
        "| CPU s (whole process) | patches per CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for thr in report["throughput"]:
        lines.append(f"| `{thr['command']}` | {thr['threads']} | {thr['steps']} | {thr['patches_per_s']} | "
                     f"{thr['patches_per_s_after_warmup']} (steps {thr['window'][0]}-{thr['window'][1]}) | "
                     f"{thr['step_ms']} | {thr['cpu_s']} | {thr['patches_per_cpu_s']} |")
    sm = report.get("smoke")
    if sm:
        lines += [
            "",
            "## Smoke run (default config, 1 thread)",
            "",
            f"`{sm['command']}` ({sm['wall_s']} s wall, {sm['cpu_s']} s CPU, {sm['patches_per_s']} patches/s)",
            "",
            "| step | " + " | ".join(str(s) for s, _ in sm["val_bpd"]) + " |",
            "| --- | " + " | ".join("---" for _ in sm["val_bpd"]) + " |",
            "| val bits/dim | " + " | ".join(f"{v:.3f}" for _, v in sm["val_bpd"]) + " |",
            "",
            f"Val bits/dim {sm['val_bpd_first']:.3f} -> {sm['val_bpd_last']:.3f} "
            f"({'falls' if sm['val_falls'] else 'DOES NOT FALL'}); "
            f"train nll {sm['train_nll_bpd_first']:.3f} -> {sm['train_nll_bpd_last']:.3f} bits/dim.",
        ]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = {"environment": environment(args.note), "throughput": []}
    # Results are written after every run, so a long benchmark stopped half way keeps what it measured.
    for threads in (int(t) for t in args.throughput_threads.split(",")):
        report["throughput"].append(throughput(args, threads))
        write_report(report)
    if not args.skip_smoke:
        report["smoke"] = smoke(args)
        write_report(report)
    print(markdown(report))
    return 0


def write_report(report: dict) -> None:
    write_atomic(RESULTS / "training.json", json.dumps(report, indent=2) + "\n")
    write_atomic(RESULTS / "training.md", markdown(report))


if __name__ == "__main__":
    sys.exit(main())
