"""Peak memory of a streamed tiled restore against image size (issue 5: 16384^2 within 20% of 4096^2).

For each --sides N: writes a synthetic N x N RGB 8-bit TIFF (deflate, 256-pixel tiles; made tile by
tile, never whole), then runs ``restore_file_tiled`` TIFF -> TIFF in a child process under
``/usr/bin/time -v`` and records its peak RSS and wall time. The child's per-tile restore is:
  identity: the tile unchanged (I/O, blending, resume state: everything but the prior);
  torch:    --iters pixel-space MAP gradient steps through a FlowModel (a checkpoint with --model,
            else an untrained tiny one), i.e. autograd through the flow at tile size, like the solver.
  cli:      the real command, ``flowrt restore IN.tif -o OUT.tif --tile T --overlap O --iters N``
            with the prior folder --model (default: the packaged prior), -v for its tile log.
            ``--timeout S`` stops it with SIGINT (as Ctrl-C) after S seconds: peak RSS is then that of
            the tiles done so far, and the full time is extrapolated from the measured tile rate.
            RSS and tiles done are also sampled every --sample seconds (does the peak grow?).
            ``--chunks N`` continues a stopped run with ``--resume`` (up to N runs, each under
            /usr/bin/time), so a restore longer than --timeout still completes; peak = max of the runs.
The identity figures isolate what grows with the image; the torch one shows the constant a real
restore adds on top. Writes benchmarks/results/tiled_rss_<restore>.json and .md. Usage:
    python benchmarks/tiled_rss.py [--sides 4096 16384] [--restore identity|torch|cli] [--note TEXT]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def synthetic_tiff(path: Path, side: int) -> None:
    """A smooth pattern plus noise, 8-bit RGB, written 256 x 256 tile by tile."""
    import tifffile

    def tiles():
        rng = np.random.default_rng(side)
        ys, xs = np.mgrid[0:256, 0:256].astype(np.float32)
        for ty in range(0, side, 256):
            for tx in range(0, side, 256):
                base = 128 + 60 * np.sin((xs + tx) / 50) * np.cos((ys + ty) / 70)
                noisy = base[:, :, None] + rng.normal(0, 10, (256, 256, 3))
                yield np.clip(noisy, 0, 255).astype(np.uint8)

    tifffile.imwrite(path, tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(256, 256),
                     photometric="rgb", compression="zlib", bigtiff=True, metadata=None)


def child(args) -> None:
    """Run one restore (this is what /usr/bin/time measures)."""
    from flowrt.pipeline.run import TilingOptions
    from flowrt.pipeline.source import open_source
    from flowrt.tiling.streamed import restore_into_file

    restore = identity if args.restore == "identity" else torch_restore(args.model, args.iters)
    with open_source(args.input, args.output, 1, TilingOptions(tile=args.tile)) as source:
        restore_into_file(source, args.output, restore, tile=args.tile, overlap=args.overlap)


def identity(tile, box):
    return tile


def torch_restore(model_path, iters: int):
    """A per-tile pixel-space MAP step loop: x <- x - lr * grad(|x - y|^2 / 2 s^2 + 0.3 nll(x))."""
    import torch

    torch.set_num_threads(1)
    if model_path:
        from flowrt.train.checkpoint import load_model
        model = load_model(model_path)[0]
    else:
        from flowrt.train.config import ModelConfig
        from flowrt.prior.flow import FlowModel
        model = FlowModel(ModelConfig(levels=3, steps_per_level=2, width=16))
        model.initialize(torch.rand(2, 3, 32, 32))
    model = model.freeze().eval()
    m = model.multiple

    def restore(tile, box):
        h, w = tile.shape[:2]
        y = torch.from_numpy(np.ascontiguousarray(tile.transpose(2, 0, 1)))[None]
        y = torch.nn.functional.pad(y, (0, -w % m, 0, -h % m), mode="replicate")
        x = y.clone().requires_grad_(True)
        for _ in range(iters):
            energy = ((x - y) ** 2).sum() / (2 * 0.1 ** 2) - 0.3 * model.log_prob(x).sum()
            grad, = torch.autograd.grad(energy, x)
            with torch.no_grad():
                x -= 1e-4 * grad
                x.clamp_(0, 1)
        return x.detach()[0, :, :h, :w].permute(1, 2, 0).numpy()

    return restore


def measure(side: int, args, scratch: Path) -> dict:
    source, out = scratch / f"in_{side}.tif", scratch / f"out_{side}.tif"
    start = time.perf_counter()
    synthetic_tiff(source, side)
    made = time.perf_counter() - start
    if args.restore == "cli":
        row = measure_cli(source, out, args, scratch)
        for path in (source, out):
            path.unlink(missing_ok=True)
        return {"side": side, **row, "make_input_s": round(made, 1), "output_matches_input": None}
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", "--input", str(source),
           "--output", str(out), "--restore", args.restore, "--iters", str(args.iters),
           "--tile", str(args.tile), "--overlap", str(args.overlap)] + \
        (["--model", args.model] if args.model else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"restore of {side}^2 failed:\n{proc.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1])
    ok = check_identity(source, out) if args.restore == "identity" else None  # None: not checkable
    for path in (source, out):
        path.unlink(missing_ok=True)
    return {"side": side, "peak_rss_mib": round(peak_kb / 1024, 1), "restore_s": round(wall, 1),
            "make_input_s": round(made, 1), "output_matches_input": ok}


_TILE_LINE = re.compile(r"tile (\d+)/(\d+), (\d+) s")


def measure_cli(source: Path, out: Path, args, scratch: Path) -> dict:
    """Run ``flowrt restore`` (and, with --chunks N, up to N-1 ``--resume`` runs after a timeout)."""
    chunks, offset = [], 0.0
    while True:
        chunks.append(run_cli_once(source, out, args, scratch, resume=bool(chunks), offset=offset))
        offset += chunks[-1]["wall"]
        if chunks[-1]["finished"] or len(chunks) >= args.chunks:
            break
    last, wall = chunks[-1], sum(c["wall"] for c in chunks)
    rates = [c["rate"] for c in chunks if c["rate"] is not None]
    rate = round(float(np.median(rates)), 2) if rates else None
    done, total = max((c["done"], c["total"]) for c in chunks)  # a run stopped before its first tile logs none
    return {"peak_rss_mib": max(c["peak_mib"] for c in chunks), "restore_s": round(wall, 1),
            "finished": last["finished"], "runs": len(chunks), "run_peaks_mib": [c["peak_mib"] for c in chunks],
            "tiles_done": done, "tiles_total": total, "s_per_tile": rate,
            "extrapolated_restore_s": None if last["finished"] or rate is None else round(wall + rate * (total - done)),
            "rss_timeline": [row for c in chunks for row in c["timeline"]]}


def run_cli_once(source: Path, out: Path, args, scratch: Path, *, resume: bool, offset: float) -> dict:
    """One ``flowrt restore`` under /usr/bin/time (and ``timeout -s INT``), sampling RSS meanwhile."""
    restore = [sys.executable, "-m", "flowrt.cli.main", "restore", str(source), "-o", str(out), "-v",
               "--iters", str(args.iters), "--tile", str(args.tile), "--overlap", str(args.overlap)] + \
        (["--model", args.model] if args.model else []) + (["--resume"] if resume else [])
    cmd = ["/usr/bin/time", "-v"] + (["timeout", "-s", "INT", str(args.timeout)] if args.timeout else []) + restore
    log_path = scratch / "restore.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        timeline = []
        while proc.poll() is None:
            time.sleep(min(args.sample, 1.0) if not timeline else args.sample)
            timeline.append(sample(proc.pid, log_path, time.perf_counter() - start + offset))
    wall = time.perf_counter() - start
    text = log_path.read_text()
    ticks = [tuple(map(int, m)) for m in _TILE_LINE.findall(text)]
    finished = proc.returncode == 0
    if not finished and not (args.timeout and proc.returncode == 124):  # 124: stopped by timeout
        sys.exit(f"flowrt restore failed (exit {proc.returncode}):\n{text[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)[1])
    done, total, _ = ticks[-1] if ticks else (0, 0, 0)
    return {"peak_mib": round(peak_kb / 1024, 1), "wall": wall, "finished": finished, "done": done,
            "total": total, "rate": tile_rate(ticks), "timeline": [row for row in timeline if row]}


def tile_rate(ticks) -> float | None:
    """Seconds per tile between the first and last logged tile (the first includes start-up)."""
    if len(ticks) < 2 or ticks[-1][0] == ticks[0][0]:
        return None
    return round((ticks[-1][2] - ticks[0][2]) / (ticks[-1][0] - ticks[0][0]), 2)


def sample(root_pid: int, log_path: Path, elapsed: float) -> dict | None:
    """The largest RSS (and its peak so far, VmHWM) among ``root_pid``'s descendants, tiles done."""
    best = None
    for pid in descendants(root_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
        if fields and (best is None or int(fields["VmHWM"]) > best[1]):
            best = (int(fields["VmRSS"]), int(fields["VmHWM"]))
    if best is None:
        return None
    ticks = _TILE_LINE.findall(log_path.read_text())
    return {"s": round(elapsed), "tiles_done": int(ticks[-1][0]) if ticks else 0,
            "rss_mib": round(best[0] / 1024), "peak_so_far_mib": round(best[1] / 1024)}


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += map(int, children)
        todo += map(int, children)
    return found


def check_identity(source: Path, out: Path) -> bool:
    """Spot-check a few regions of the output against the input (identity restore)."""
    from flowrt.io.tiff_stream import TiffSource
    with TiffSource(source) as a, TiffSource(out) as b:
        side = a.shape[0]
        boxes = [(0, 300, 0, 300), (side // 2 - 40, side // 2 + 40, 0, side), (side - 7, side, side - 900, side)]
        return all(np.array_equal(a.read(*box), b.read(*box)) for box in boxes)


def markdown(report: dict) -> str:
    rows = report["runs"]
    lines = [f"# Peak RSS of a tiled TIFF -> TIFF restore (tile {report['tile']}, overlap "
             f"{report['overlap']}, restore: {report['restore']})", ""]
    if report["restore"] == "cli":
        return markdown_cli(report, lines)
    lines += ["| image | peak RSS MiB | vs smallest | restore s | output == input (identity only) |",
              "| --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['side']}x{row['side']} RGB | {row['peak_rss_mib']:.0f} | "
                     f"{row['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}x | {row['restore_s']} | "
                     f"{'n/a' if row['output_matches_input'] is None else row['output_matches_input']} |")
    lines += ["", f"{report['note']}", "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def markdown_cli(report: dict, lines: list) -> str:
    rows = report["runs"]
    lines += ["| image | peak RSS MiB | vs smallest | runs (peak MiB each) | tiles done | s per tile | restore s | "
              "full restore s (extrapolated if stopped) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        full = row["restore_s"] if row["finished"] else f"~{row['extrapolated_restore_s']} (stopped)"
        peaks = ", ".join(f"{p:.0f}" for p in row["run_peaks_mib"])
        lines.append(f"| {row['side']}x{row['side']} RGB | {row['peak_rss_mib']:.0f} | "
                     f"{row['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}x | {row['runs']} ({peaks}) | "
                     f"{row['tiles_done']}/{row['tiles_total']} | {row['s_per_tile']} | {row['restore_s']} | {full} |")
    lines += ["", "RSS of the restoring process over time (MiB; peak so far in brackets):", ""]
    for row in rows:
        points = ", ".join(f"{p['s']} s / {p['tiles_done']} tiles: {p['rss_mib']} ({p['peak_so_far_mib']})"
                           for p in row["rss_timeline"][::max(1, len(row["rss_timeline"]) // 12)])
        lines.append(f"- {row['side']}^2: {points}")
    lines += ["", f"{report['note']}", "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", type=int, nargs="+", default=[4096, 16384])
    p.add_argument("--restore", choices=["identity", "torch", "cli"], default="identity")
    p.add_argument("--model", default="", help="checkpoint for --restore torch (default: tiny untrained); "
                   "exported prior folder for --restore cli (default: the packaged prior)")
    p.add_argument("--timeout", type=int, default=0, help="cli: stop a restore after this many seconds")
    p.add_argument("--sample", type=float, default=10.0, help="cli: seconds between RSS samples")
    p.add_argument("--chunks", type=int, default=1, help="cli: after a --timeout stop, continue with "
                   "--resume, up to this many runs in all (each one measured by /usr/bin/time)")
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--note", default="")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="flowrt_rss_", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        runs = []
        for side in args.sides:
            runs.append(measure(side, args, Path(tmp)))
            print(runs[-1], flush=True)
    report = {"restore": args.restore, "tile": args.tile, "overlap": args.overlap, "iters": args.iters,
              "model": args.model or None, "timeout_s": args.timeout or None, "note": args.note, "runs": runs,
              "command": "python benchmarks/tiled_rss.py " + " ".join(argv or sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"tiled_rss_{args.restore}"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
