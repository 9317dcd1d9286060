"""ONNX Runtime against torch eager: one forward (x -> u) and one inverse (u -> x) pass of the flow.

At --size (default 512x512, batch 1), median and min of --repeats after --warmup passes, for each
thread count in --threads: torch eager float32 (no_grad), ORT float32 and ORT float16 (graphs from
``export_graphs``, timed whether or not fp16 passes verification; its parity is printed by
``flowrt export --fp16``), and the CUDA pair (torch on cuda, ORT CUDA provider) when both load.
ORT sessions are the Prior's: no spinning threads, sequential execution.

The model is --checkpoint's, or an untrained model of the default architecture (speed depends only
on the architecture). Records the load average and whether a training job shares the CPU.
Writes benchmarks/results/onnx_speed.json and .md. Usage:
    python benchmarks/onnx_speed.py [--checkpoint runs/default/last.pt] [--threads 1 2] [--repeats 7]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from flowrt.export.onnx_export import export_graphs
from flowrt.prior.folders import FORWARD_ONNX, INVERSE_ONNX
from flowrt.prior.onnx_backend import CPU, CUDA, cuda_provider_loads, open_session
from flowrt.train.checkpoint import load_model
from flowrt.train.config import ModelConfig, to_dict
from flowrt.prior.flow import FlowModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def timed_round_robin(calls: dict, warmup: int, repeats: int) -> dict:
    """Median and min wall ms per named call; the calls take turns, so a load change on the shared
    machine hits every engine alike instead of whichever happened to run at the time."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: {"median_ms": round(statistics.median(t), 1), "min_ms": round(min(t), 1)} for name, t in times.items()}


def load(checkpoint):
    if checkpoint:
        model, cfg = load_model(checkpoint)
        return model.freeze(), to_dict(cfg.model), checkpoint
    model = FlowModel(ModelConfig())
    model.initialize(torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    return model.eval().freeze(), to_dict(ModelConfig()), "untrained default architecture"


def engines(model, folders: dict, device: str, threads: int, x: torch.Tensor, u: torch.Tensor) -> tuple:
    """({engine: (forward call, inverse call)}, {engine: ORT providers}) at one device and thread count."""
    calls, providers = {}, {}
    if device == "cuda":
        model, xt, ut = model.to("cuda"), x.cuda(), u.cuda()

        def torch_call(f, arg):
            return lambda: (f(arg), torch.cuda.synchronize())
    else:
        xt, ut = x, u

        def torch_call(f, arg):
            return lambda: f(arg)
    calls["torch eager float32"] = (torch_call(model, xt), torch_call(model.inverse, ut))
    requested = [CUDA, CPU] if device == "cuda" else [CPU]
    for precision, folder in folders.items():
        fwd = open_session(folder / FORWARD_ONNX, requested, threads)
        inv = open_session(folder / INVERSE_ONNX, requested, threads)
        xn, un = x.numpy(), u.numpy()
        calls[f"onnxruntime {precision}"] = (lambda f=fwd: f.run(None, {"x": xn}), lambda i=inv: i.run(None, {"u": un}))
        providers[f"onnxruntime {precision}"] = fwd.get_providers()
    return calls, providers


def measure(model, folders, device: str, threads: int, x, u, warmup: int, repeats: int) -> list:
    """Rows of forward and inverse timings for every engine at one setting."""
    calls, providers = engines(model, folders, device, threads, x, u)
    flat = {(name, direction): pair[i] for name, pair in calls.items() for i, direction in enumerate(("forward", "inverse"))}
    with torch.no_grad():
        stats = timed_round_robin(flat, warmup, repeats)
    model.to("cpu")
    return [{"engine": name, "device": device, "threads": threads, "providers": providers.get(name, []),
             "forward": stats[(name, "forward")], "inverse": stats[(name, "inverse")]} for name in calls]


def training_running() -> bool:
    """Whether some process on this machine runs ``flowrt train`` (it competes for the cores)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"train" in args and any(a.endswith(b"flowrt") or b"flowrt.cli" in a for a in args):
            return True
    return False


def run(args) -> dict:
    model, arch, source = load(args.checkpoint)
    h, w = args.size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, h, w, generator=gen)
    with torch.no_grad():
        u = model(x)[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"float32": Path(tmp) / "fp32", "float16": Path(tmp) / "fp16"}
        for precision, folder in folders.items():
            folder.mkdir()
            export_graphs(model, folder, fp16=precision == "float16")
        for threads in args.threads:
            torch.set_num_threads(threads)
            rows += measure(model, folders, "cpu", threads, x, u, args.warmup, args.repeats)
        if torch.cuda.is_available() and cuda_provider_loads():
            rows += measure(model, folders, "cuda", 0, x, u, args.warmup, args.repeats)
    return {"size": f"{h}x{w}", "batch": 1, "model": source, "architecture": arch, "rows": rows,
            "warmup": args.warmup, "repeats": args.repeats, "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "training_job_sharing_cpu": training_running(), "machine": platform.processor() or platform.machine(),
            "versions": {"torch": str(torch.__version__), "onnxruntime": __import__("onnxruntime").__version__},
            "cuda": "measured" if any(r["device"] == "cuda" for r in rows) else "no CUDA device on this machine",
            "note": args.note}


def speedups(result: dict) -> list:
    """(device, threads, engine, forward x, inverse x) against torch eager at the same setting."""
    base = {(r["device"], r["threads"]): r for r in result["rows"] if r["engine"].startswith("torch")}
    out = []
    for r in result["rows"]:
        ref = base[(r["device"], r["threads"])]
        out.append((r, ref["forward"]["median_ms"] / r["forward"]["median_ms"],
                    ref["inverse"]["median_ms"] / r["inverse"]["median_ms"]))
    return out


def markdown(result: dict) -> str:
    lines = [f"# Flow forward and inverse, ONNX Runtime against torch eager, {result['size']} batch 1 "
             f"(median of {result['repeats']} after {result['warmup']} warm-up)", "",
             f"Model: {result['model']} ({result['architecture']}). CPU: {result['cpu_count']} cores; load average "
             f"at start {result['load_average_at_start']}; a training job shared the CPU: "
             f"{'yes' if result['training_job_sharing_cpu'] else 'no'}. CUDA: {result['cuda']}.", "",
             "| engine | device | threads | forward ms | inverse ms | forward speed-up | inverse speed-up |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r, fwd, inv in speedups(result):
        lines.append(f"| {r['engine']} | {r['device']} | {r['threads'] or '-'} | {r['forward']['median_ms']} | "
                     f"{r['inverse']['median_ms']} | {fwd:.2f}x | {inv:.2f}x |")
    lines += ["", "Speed-up: torch eager's median over this engine's, same device and threads. float16 graphs are "
              "timed even though `flowrt export --fp16` refuses them where they fail verification.",
              "Command: `python benchmarks/onnx_speed.py" + (f" --checkpoint {result['model']}`" if result["model"].endswith(".pt") else "`")]
    if result["note"]:
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="flowrt checkpoint (default: untrained default architecture)")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default=str(RESULTS / "onnx_speed"), help="output path without suffix")
    args = parser.parse_args()
    result = run(args)
    write_atomic(Path(args.out + ".json"), json.dumps(result, indent=2) + "\n")
    write_atomic(Path(args.out + ".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
