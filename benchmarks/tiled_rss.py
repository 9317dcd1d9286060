"""Peak memory of a streamed tiled restore against image size (issue 5: 16384^2 within 20% of 4096^2).

For each --sides N: writes a synthetic N x N RGB 8-bit TIFF (deflate, 256-pixel tiles; made tile by
tile, never whole), then runs ``restore_file_tiled`` TIFF -> TIFF in a child process under
``/usr/bin/time -v`` and records its peak RSS and wall time. The child's per-tile restore is:
  identity: the tile unchanged (I/O, blending, resume state: everything but the prior);
  torch:    --iters pixel-space MAP gradient steps through a FlowModel (a checkpoint with --model,
            else an untrained tiny one), i.e. autograd through the flow at tile size, like the solver.
The identity figures isolate what grows with the image; the torch one shows the constant a real
restore adds on top. Writes benchmarks/results/tiled_rss.json and .md. Usage:
    python benchmarks/tiled_rss.py [--sides 4096 16384] [--restore identity|torch] [--note TEXT]
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
    from flowrt.tiled_file import restore_file_tiled

    restore = identity if args.restore == "identity" else torch_restore(args.model, args.iters)
    restore_file_tiled(args.input, args.output, restore, tile=args.tile, overlap=args.overlap)


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
        from flowrt.train.model import FlowModel
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


def check_identity(source: Path, out: Path) -> bool:
    """Spot-check a few regions of the output against the input (identity restore)."""
    from flowrt.tiff_stream import TiffSource
    with TiffSource(source) as a, TiffSource(out) as b:
        side = a.shape[0]
        boxes = [(0, 300, 0, 300), (side // 2 - 40, side // 2 + 40, 0, side), (side - 7, side, side - 900, side)]
        return all(np.array_equal(a.read(*box), b.read(*box)) for box in boxes)


def markdown(report: dict) -> str:
    rows = report["runs"]
    lines = [f"# Peak RSS of a tiled TIFF -> TIFF restore (tile {report['tile']}, overlap "
             f"{report['overlap']}, restore: {report['restore']})", "",
             "| image | peak RSS MiB | vs smallest | restore s | output == input (identity only) |",
             "| --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['side']}x{row['side']} RGB | {row['peak_rss_mib']:.0f} | "
                     f"{row['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}x | {row['restore_s']} | "
                     f"{'n/a' if row['output_matches_input'] is None else row['output_matches_input']} |")
    lines += ["", f"{report['note']}", "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", type=int, nargs="+", default=[4096, 16384])
    p.add_argument("--restore", choices=["identity", "torch"], default="identity")
    p.add_argument("--model", default="", help="checkpoint for --restore torch (default: tiny untrained)")
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
              "model": args.model or None, "note": args.note, "runs": runs,
              "command": "python benchmarks/tiled_rss.py " + " ".join(argv or sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"tiled_rss_{args.restore}"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
