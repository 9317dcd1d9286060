"""Your own prior against the packaged one, restore time per pixel (issue 24, point 8).

Trains a prior with the packaged prior's architecture (train/configs/default.yaml) for a few steps,
exports it with the CLI (``flowrt export``, which writes the gradient graph by default), then times
``flowrt restore`` of one noisy crop with the packaged prior and with ``--model`` the exported one,
the two taking turns for --repeats rounds in fresh processes (start-up, model load and I/O
included), in one invocation. The quality of a few-step prior is not the point: the engine and the
seconds per pixel are. Writes results/own_prior_speed.{json,md}.

    nice -n 10 python benchmarks/own_prior_speed.py
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import TASKS, degrade, load_photo, seed_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def flowrt(*args: str) -> tuple:
    """(seconds, stderr) of ``python -m flowrt.cli.main ARGS`` in a fresh process; exits on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flowrt.cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"flowrt {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - t0, proc.stderr


def engine_of(stderr: str) -> str:
    found = re.search(r"engine (\w+)", stderr)
    return found.group(1) if found else "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/val-photos", help="where the timed photo comes from")
    ap.add_argument("--photo", default="jxl_flower.png")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--train-data", default="../shared/data/train")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    clean = load_photo(Path(args.data) / args.photo, args.crop)
    _, encoded = degrade(clean, TASKS["noise"], seed_for("noise", args.photo))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_s, _ = flowrt("train", "--config", ROOT / "train/configs/default.yaml", "--data",
                            Path(args.train_data).resolve(), "--out", tmp / "run", "--steps", args.steps,
                            "--threads", "1")
        export_s, _ = flowrt("export", tmp / "run" / "last.pt", "-o", tmp / "mine")
        src = tmp / "noisy.png"
        src.write_bytes(encoded)
        runners = {"packaged prior": [], "own prior (--model)": ["--model", tmp / "mine"]}
        seconds = {name: [] for name in runners}
        engines = {}
        for _ in range(args.repeats):
            for name, extra in runners.items():
                took, stderr = flowrt("restore", src, "-o", tmp / "out.png", "-v", *extra)
                seconds[name].append(took)
                engines[name] = engine_of(stderr)
    pixels = clean.shape[0] * clean.shape[1]
    rows = [{"prior": name, "engine": engines[name], "median_s": round(statistics.median(s), 2),
             "all_s": [round(v, 2) for v in s], "us_per_pixel": round(1e6 * statistics.median(s) / pixels, 1)}
            for name, s in seconds.items()]
    ratio = rows[1]["median_s"] / rows[0]["median_s"]
    report = {"photo": args.photo, "crop": args.crop, "task": "noise sigma 25, no other flag", "steps": args.steps,
              "train_s": round(train_s, 1), "export_s": round(export_s, 1), "rows": rows,
              "own_over_packaged": round(ratio, 3), "target": 1.5,
              "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "command": "python benchmarks/own_prior_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "own_prior_speed.json").write_text(json.dumps(report, indent=2))
    table = "".join(f"| {r['prior']} | {r['engine']} | {r['median_s']} | {r['all_s']} | {r['us_per_pixel']} |\n"
                    for r in rows)
    (args.out / "own_prior_speed.md").write_text(
        f"# Restore time per pixel: your own prior against the packaged one\n\n"
        f"`flowrt restore` of the {args.crop}x{args.crop} centre crop of {args.photo} with noise sigma 25 (no "
        f"other flag), fresh process per run, the two taking turns for {args.repeats} rounds in one invocation. "
        f"The own prior has the packaged architecture, trained {args.steps} steps ({report['train_s']} s) and "
        f"exported with `flowrt export` ({report['export_s']} s, gradient graph included).\n\n"
        f"| prior | engine | median s | all s | us per pixel |\n| --- | --- | --- | --- | --- |\n{table}\n"
        f"Own / packaged: {ratio:.2f}x (target: at most 1.5x). Load average before / after: "
        f"{report['load_average_before_after']} on {os.cpu_count()} cores (seconds on a shared machine are "
        f"inflated alike for both priors; their ratio is the figure).\n\nCommand: `{report['command']}`\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
