"""Seconds per 512x512 image for `flowrt restore` at default settings, and iterations per second.

    python benchmarks/restore_speed.py --data ../shared/data/val --photo plasma_Kite.png

Degrades the photo's 512x512 centre crop with the noise task (sigma 25, benchmarks/protocol.py), then
times the real CLI in a fresh process per run: once with `--iters 0` (start-up, model load, I/O)
and once at default settings, with one torch thread and with torch's default. Iterations/s = iterations / (full - zero-iteration wall time).
Peak RSS is the child's ru_maxrss. Writes results/restore_speed.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import TASKS, degrade, load_photo, seed_for  # noqa: E402

from flowrt.solve.solver import SolverConfig  # noqa: E402

ITERATIONS = SolverConfig().iters


def timed_restore(src: Path, out: Path, extra: list[str], threads: str | None) -> float:
    """Wall seconds of one `flowrt restore` child process (raises on failure); threads: its
    OMP_NUM_THREADS, or None for torch's default (one per core)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "flowrt.cli.main", "restore", str(src), "-o", str(out), "--sigma", "25", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"flowrt restore failed: {proc.stderr.strip()}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/val"))
    ap.add_argument("--photo", default="plasma_Kite.png")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    from PIL import Image
    task = TASKS["noise"]
    _, encoded = degrade(load_photo(args.data / args.photo, 512), task, seed_for(task.name, args.photo))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "n512.png"
        src.write_bytes(encoded)
        for threads in ("1", None):
            overhead = timed_restore(src, Path(tmp) / "zero.png", ["--iters", "0"], threads)
            full = timed_restore(src, Path(tmp) / "out.png", [], threads)
            assert Image.open(Path(tmp) / "out.png").size == (512, 512)
            rows.append({"omp_num_threads": threads or f"unset (torch default, {os.cpu_count()} cores)",
                         "wall_s": round(full, 1), "overhead_s": round(overhead, 1),
                         "iterations_per_s": round(ITERATIONS / (full - overhead), 2)})
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = {"photo": args.photo, "size": [512, 512], "iterations": ITERATIONS, "runs": rows,
              "peak_rss_mib": round(peak_mib), "load_average": [round(v, 2) for v in os.getloadavg()],
              "machine": platform.machine()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restore_speed.json").write_text(json.dumps(report, indent=2))
    table = "".join(f"| {r['omp_num_threads']} | {r['wall_s']} | {r['overhead_s']} | {r['iterations_per_s']} |\n"
                    for r in rows)
    (args.out / "restore_speed.md").write_text(
        "# flowrt restore at default settings, 512x512 (this CPU)\n\n"
        f"`flowrt restore n512.png -o out.png --sigma 25` on the 512x512 centre crop of `{args.photo}` with "
        f"N(0, 25^2) noise; packaged default prior, image-space MAP, {ITERATIONS} iterations; load average "
        f"at the end {report['load_average']}; peak RSS of any run {report['peak_rss_mib']} MiB.\n\n"
        "| OMP_NUM_THREADS | wall (s) | of which start-up, load, I/O (s) | iterations/s |\n| --- | --- | --- | --- |\n"
        + table + "\nCommand: `python benchmarks/restore_speed.py`\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
