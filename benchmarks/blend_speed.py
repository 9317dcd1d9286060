"""Speed of the numba blend kernels against their numpy references and a plain copy of the same bytes.

On an 8192 x 8192 x 3 float32 accumulator (plus its 8192 x 8192 weight sum), median of --repeats:
  tiles:     every tile of the real 512/32 grid (``TileGrid.plan``), each a float32 (512, 512, 3)
             restored tile times its raised-cosine window, accumulated (what a tiled restore does);
  whole:     one 8192 x 8192 x 3 image times a full-size separable window in one call;
  normalise: acc / wsum over the whole accumulator.
MB/s counts the float32 image bytes consumed (tile bytes for accumulate, acc bytes for normalise);
"copy" writes the same bytes to the same places with numpy (``acc[box] = tile``, ``np.copyto``).
Targets (issue 5): numba >= 4x numpy and within 3x of the copy.
Writes benchmarks/results/blend_speed.json and .md. Usage:
    NUMBA_NUM_THREADS=2 python benchmarks/blend_speed.py [--repeats 5] [--note TEXT]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from flowrt.tiling.blend import (accumulate, accumulate_reference, normalise,  # noqa: E402
                          normalise_reference)
from flowrt.tiling.grid import TileGrid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SIDE, CHANNELS, TILE, OVERLAP = 8192, 3, 512, 32


def timed(func, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls after one warm-up call (numba compiles on the first)."""
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def tile_scenario(acc, wsum, repeats: int) -> dict:
    grid = TileGrid.plan(SIDE, SIDE, tile=TILE, overlap=OVERLAP)
    boxes = [(i, j, grid.rows[i], grid.cols[j]) for i in range(len(grid.rows))
             for j in range(len(grid.cols))]
    tiles = {}
    rng = np.random.default_rng(0)
    for _, _, (y0, y1), (x0, x1) in boxes:
        tiles.setdefault((y1 - y0, x1 - x0), rng.random((y1 - y0, x1 - x0, CHANNELS), np.float32))
    windows = {(i, j): grid.output_window(i, j) for i, j, _, _ in boxes}

    def run(kernel):
        def body():
            for i, j, (y0, y1), (x0, x1) in boxes:
                kernel(acc, wsum, tiles[(y1 - y0, x1 - x0)], *windows[(i, j)], y0, x0)
        return body

    def copy():
        for _, _, (y0, y1), (x0, x1) in boxes:
            acc[y0:y1, x0:x1] = tiles[(y1 - y0, x1 - x0)]

    megabytes = sum(tiles[(y1 - y0, x1 - x0)].nbytes for _, _, (y0, y1), (x0, x1) in boxes) / 1e6
    return summarise(megabytes, {"numba": timed(run(accumulate), repeats),
                                 "numpy": timed(run(accumulate_reference), repeats),
                                 "copy": timed(copy, repeats)}, tiles=len(boxes))


def whole_scenario(acc, wsum, repeats: int) -> dict:
    image = np.random.default_rng(1).random(acc.shape, np.float32)
    window = np.hanning(SIDE + 2)[1:-1].astype(np.float32)
    return summarise(image.nbytes / 1e6, {
        "numba": timed(lambda: accumulate(acc, wsum, image, window, window, 0, 0), repeats),
        "numpy": timed(lambda: accumulate_reference(acc, wsum, image, window, window, 0, 0), repeats),
        "copy": timed(lambda: np.copyto(acc, image), repeats)})


def normalise_scenario(acc, wsum, repeats: int) -> dict:
    out = np.empty_like(acc)
    return summarise(acc.nbytes / 1e6, {
        "numba": timed(lambda: normalise(acc, wsum, out), repeats),
        "numpy": timed(lambda: normalise_reference(acc, wsum), repeats),
        "copy": timed(lambda: np.copyto(out, acc), repeats)})


def summarise(megabytes: float, times: dict, **extra) -> dict:
    rates = {name: megabytes / statistics.median(ts) for name, ts in times.items()}
    return {"megabytes": round(megabytes, 1), **extra,
            "seconds": {name: [round(t, 4) for t in ts] for name, ts in times.items()},
            "mb_per_s": {name: round(rate, 1) for name, rate in rates.items()},
            "numba_over_numpy": round(rates["numba"] / rates["numpy"], 2),
            "copy_over_numba": round(rates["copy"] / rates["numba"], 2),
            "meets_targets": rates["numba"] >= 4 * rates["numpy"] and rates["copy"] <= 3 * rates["numba"]}


def markdown(report: dict) -> str:
    lines = [f"# Blend kernels, {SIDE}x{SIDE}x{CHANNELS} float32 (median of {report['repeats']})", "",
             f"numba threads: {report['numba_threads']}; load average at start: "
             f"{report['load_average']}; {report['note']}", "",
             "| scenario | numba MB/s | numpy MB/s | copy MB/s | numba / numpy | copy / numba | "
             "targets (>=4x numpy, <=3x copy) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in ("tiles", "whole", "normalise"):
        r = report[name]
        lines.append(f"| {name} | {r['mb_per_s']['numba']:.0f} | {r['mb_per_s']['numpy']:.0f} | "
                     f"{r['mb_per_s']['copy']:.0f} | {r['numba_over_numpy']:.2f}x | "
                     f"{r['copy_over_numba']:.2f}x | {'met' if r['meets_targets'] else 'NOT met'} |")
    lines += ["", "tiles: the real 512/32 tile grid accumulated tile by tile; whole: the full image in one "
              "call; normalise: acc / wsum. Command: `NUMBA_NUM_THREADS=2 python benchmarks/blend_speed.py`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    acc = np.zeros((SIDE, SIDE, CHANNELS), np.float32)
    wsum = np.ones((SIDE, SIDE), np.float32)
    report = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "numba_threads": numba.get_num_threads(), "numba": numba.__version__,
              "numpy": np.__version__, "load_average": [round(x, 2) for x in os.getloadavg()],
              "repeats": args.repeats, "note": args.note}
    for name, scenario in (("tiles", tile_scenario), ("whole", whole_scenario),
                           ("normalise", normalise_scenario)):
        report[name] = scenario(acc, wsum, args.repeats)
        print(name, report[name]["mb_per_s"], flush=True)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "blend_speed.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "blend_speed.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
