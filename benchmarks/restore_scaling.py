"""Seconds per megapixel of a noise-25 restore at default settings, at 0.25, 1 and 4 megapixels,
side by side in one invocation (issue 11: the cost per pixel should not grow with the image).

    python benchmarks/restore_scaling.py --data ../shared/data/val --photo plasma_Kite.png

Each size is a square cut from the photo mirrored onto itself as often as needed (so the content
stays photographic at every size), degraded with the noise task of benchmarks/protocol.py, and
restored by the real CLI in a fresh process (start-up, model load and I/O included) with both cores
unless --threads says otherwise. Sizes take turns over --repeats rounds; medians are reported.
Writes results/restore_scaling.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from protocol import TASKS, degrade, load_photo, seed_for  # noqa: E402
from restore_speed import psnr_of_file, time_flowrt  # noqa: E402

SIDES = (512, 1024, 2048)


def mirrored_square(photo: np.ndarray, side: int) -> np.ndarray:
    """(side, side, 3) uint8: the photo reflected across its borders until it covers the square."""
    h, w = photo.shape[:2]
    reps_y, reps_x = -(-side // h), -(-side // w)
    rows = [photo if i % 2 == 0 else photo[::-1] for i in range(reps_y)]
    column = np.concatenate(rows, 0)
    tiles = [column if j % 2 == 0 else column[:, ::-1] for j in range(reps_x)]
    return np.ascontiguousarray(np.concatenate(tiles, 1)[:side, :side])


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/val"))
    ap.add_argument("--photo", default="plasma_Kite.png")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of every run (default: all cores)")
    ap.add_argument("--extra", default="", help="extra flowrt flags for every run")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    task = TASKS["noise"]
    photo = load_photo(args.data / args.photo)
    seconds = {side: [] for side in SIDES}
    quality = {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {}
        for side in SIDES:
            clean = mirrored_square(photo, side)
            _, encoded = degrade(clean, task, seed_for(task.name, f"{side}/{args.photo}"))
            inputs[side] = (clean, Path(tmp) / f"n{side}.png")
            inputs[side][1].write_bytes(encoded)
        for _ in range(args.repeats):
            for side in SIDES:
                clean, src = inputs[side]
                out = Path(tmp) / f"out{side}.png"
                seconds[side].append(time_flowrt(src, out, args.extra.split(), args.threads))
                quality[side] = round(psnr_of_file(clean, out), 2)
                print(f"{side}x{side}: {seconds[side][-1]:.1f} s, {quality[side]} dB", flush=True)
    rows = []
    for side in SIDES:
        mp = side * side / 1e6
        med = statistics.median(seconds[side])
        rows.append({"side": side, "megapixels": round(mp, 3), "median_s": round(med, 1),
                     "s_per_mp": round(med / mp, 1), "all_s": [round(v, 1) for v in seconds[side]],
                     "psnr_db": quality[side]})
    per_mp = [r["s_per_mp"] for r in rows]
    spread = max(per_mp) / min(per_mp) - 1
    report = {"photo": args.photo, "threads": args.threads or f"unset ({os.cpu_count()} cores)",
              "extra": args.extra, "rows": rows, "max_over_min_minus_1": round(spread, 3),
              "load_average": [round(v, 2) for v in os.getloadavg()]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restore_scaling.json").write_text(json.dumps(report, indent=2))
    table = "".join(f"| {r['side']}x{r['side']} | {r['megapixels']} | {r['median_s']} | {r['s_per_mp']} | {r['psnr_db']} |\n"
                    for r in rows)
    (args.out / "restore_scaling.md").write_text(
        "# Seconds per megapixel, noise 25, default settings (this CPU)\n\n"
        f"Squares mirrored from `{args.photo}`, N(0, 25^2) noise; fresh process per run (start-up, model load, "
        f"I/O included); OMP_NUM_THREADS {report['threads']}; median of {args.repeats} round(s), sizes taking "
        f"turns; load average at the end {report['load_average']}.\n\n"
        "| size | MP | wall (s) | s / MP | PSNR (dB) |\n| --- | --- | --- | --- | --- |\n" + table
        + f"\nLargest over smallest seconds per megapixel: {1 + spread:.2f}x.\n\n"
        "Command: `python benchmarks/restore_scaling.py`\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
