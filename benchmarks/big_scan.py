"""A big tiled TIFF through the real CLI with no extra flag (issue 24, point 2): is it accepted, and what
peak RSS does the streamed restore reach?

Writes a synthetic N x N 8-bit RGB tiled TIFF (``tiled_rss.synthetic_tiff``: deflate, 256-pixel tiles,
written tile by tile, never whole), then runs
    flowrt restore big.tif -o out.tif --iters 0 --sigma 10 --tile 512 -v
under ``/usr/bin/time -v``. ``--timeout S`` stops it with SIGINT (as Ctrl-C) after S seconds: the
peak RSS is then that of the tiles done so far, not a bound for the whole image. Also checks that the same file is refused with one line naming
``--max-pixels`` when ``FLOWRT_MAX_PIXELS`` is set below its size.

Writes benchmarks/results/big_scan.json and .md. Usage:
    python benchmarks/big_scan.py [--side 16384] [--timeout 300]
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

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.tiled_rss import _TILE_LINE, synthetic_tiff  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ARGS = ("--iters", "0", "--sigma", "10", "--tile", "512", "-v")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=16384)
    parser.add_argument("--timeout", type=int, default=300, help="stop the restore (SIGINT) after this many s")
    parser.add_argument("--scratch", default=None, help="folder for the TIFF (default: a temporary one)")
    parser.add_argument("--name", default="big_scan", help="results file stem in benchmarks/results/")
    args = parser.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", NO_COLOR="1")
    env.pop("FLOWRT_MAX_PIXELS", None)
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        src, out = Path(tmp) / "big.tif", Path(tmp) / "out.tif"
        started = time.perf_counter()
        synthetic_tiff(src, args.side)
        made = time.perf_counter() - started
        file_mib = round(src.stat().st_size / 2 ** 20, 1)
        refused = subprocess.run([sys.executable, "-m", "flowrt.cli.main", "restore", str(src), "-o", str(out),
                                  *ARGS], capture_output=True, text=True,
                                 env=dict(env, FLOWRT_MAX_PIXELS=str(args.side * args.side - 1)))
        cmd = ["/usr/bin/time", "-v", "timeout", "-s", "INT", str(args.timeout), sys.executable, "-m",
               "flowrt.cli.main", "restore", str(src), "-o", str(out), *ARGS]
        started = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - started
    text = run.stderr
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)[1])
    ticks = _TILE_LINE.findall(text)
    done, total = (int(ticks[-1][0]), int(ticks[-1][1])) if ticks else (0, 0)
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    row = {"side": args.side, "file_mib": file_mib, "tiff_made_s": round(made, 1), "command": " ".join(["flowrt", "restore",
           "big.tif", "-o", "out.tif", *ARGS]), "exit": run.returncode, "stopped_by_timeout": run.returncode == 124,
           "accepted": not errors, "errors": errors, "tiles_done": done, "tiles_total": total,
           "peak_rss_mib": round(peak_kib / 1024, 1), "wall_s": round(wall, 1),
           "refused_below_limit": refused.stderr.strip().splitlines()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(row, indent=1) + "\n")
    lines = [f"# A {args.side}x{args.side} tiled TIFF through the CLI, no extra flag (benchmarks/big_scan.py)", "",
             f"`python benchmarks/big_scan.py --side {args.side} --timeout {args.timeout} --name {args.name}` "
             "(OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1, a shared 2-core machine): `" + row["command"] + "`.", "",
             f"- input: {file_mib} MiB on disk ({args.side * args.side / 1e6:.0f} megapixels)",
             f"- accepted with no flag: {row['accepted']} (errors: {errors or 'none'})",
             f"- exit {run.returncode}" + (" (stopped by the timeout, as Ctrl-C)" if row["stopped_by_timeout"] else ""),
             f"- tiles done: {done} of {total} in {row['wall_s']} s"
             + (" (a partial run: the peak RSS below is over these tiles only)" if done < total else ""),
             f"- peak RSS: {row['peak_rss_mib']} MiB",
             f"- with FLOWRT_MAX_PIXELS={args.side * args.side - 1}: {' / '.join(row['refused_below_limit'])}"]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if row["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
