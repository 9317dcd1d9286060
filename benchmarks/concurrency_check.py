"""Two ``flowrt restore`` processes on the same output, tiled and whole, N rounds (issue 24, point 1).

Each round starts run A, waits a random 0 to --gap seconds, starts run B with the same arguments, and
waits for both. A round is *corrupt* when the output is missing or not whole, or differs from a
reference restore made alone beforehand (the restore is seeded, so any complete run writes the same
pixels); when a run failed with anything but the one-line "another flowrt run" refusal; or when a
partial output, resume state or lock file is left beside it. Expect 0 corrupt rounds.

Writes benchmarks/results/concurrency_check.json and .md. Usage:
    python benchmarks/concurrency_check.py [--rounds 20] [--gap 2.0] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FAST = ("--sigma", "20", "--start", "blur", "--iters", "8", "--seed", "1")
MODES = {"tiled": ("--tile", "64", "--overlap", "16"), "whole": ("--tile", "0",)}


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", NO_COLOR="1", PYTHONWARNINGS="ignore")
    return env


def _command(src: Path, out: Path, mode: str, model) -> list:
    extra = ("--model", str(model)) if model else ()
    return [sys.executable, "-m", "flowrt.cli.main", "restore", str(src), "-o", str(out), *FAST,
            *MODES[mode], *extra]


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def one_round(src: Path, out: Path, mode: str, model, gap: float, reference: np.ndarray) -> dict:
    """Run A, then B after a random delay; what went wrong, if anything."""
    from flowrt.io.complete import is_complete_image
    out.unlink(missing_ok=True)
    delay = random.uniform(0, gap)
    first = subprocess.Popen(_command(src, out, mode, model), env=_env(), stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    second = subprocess.Popen(_command(src, out, mode, model), env=_env(), stderr=subprocess.PIPE, text=True)
    results = [(proc.wait(), proc.stderr.read()) for proc in (first, second)]
    problems = []
    for rc, err in results:
        lines = err.strip().splitlines()
        if rc != 0 and not (len(lines) == 1 and "another flowrt run" in lines[0]):
            problems.append(f"a run failed otherwise (rc {rc}): {err.strip()[-300:]}")
    if not any(rc == 0 for rc, _ in results):
        problems.append("neither run succeeded")
    if not out.exists() or not is_complete_image(out):
        problems.append("output missing or not whole")
    elif not np.array_equal(_pixels(out), reference):
        problems.append("output differs from the reference restore")
    leftovers = sorted(p.name for p in out.parent.iterdir() if p.name not in (src.name, out.name, "reference.png"))
    if leftovers:
        problems.append(f"left beside it: {leftovers}")
    return {"mode": mode, "delay_s": round(delay, 3), "exit_codes": [rc for rc, _ in results],
            "refused": sum(rc != 0 for rc, _ in results), "problems": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per mode (tiled, whole)")
    parser.add_argument("--gap", type=float, default=2.0, help="largest delay between the two starts, s")
    parser.add_argument("--model", default=None, help="prior folder (default: the packaged prior)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    random.seed(args.seed)
    from PIL import Image
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:160, 0:160]
        img = 128 + 60 * np.sin(xx / 9.0 + yy / 13.0)[..., None] + rng.normal(0, 20, (160, 160, 3))
        src = folder / "n.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(src)
        for mode in MODES:
            ref = folder / "reference.png"
            subprocess.run(_command(src, ref, mode, args.model), env=_env(), check=True, capture_output=True)
            reference = _pixels(ref)
            for index in range(args.rounds):
                row = one_round(src, folder / "o.png", mode, args.model, args.gap, reference)
                print(f"{mode} round {index + 1}: delay {row['delay_s']} s, exit codes {row['exit_codes']}"
                      + (f", PROBLEMS {row['problems']}" if row["problems"] else ""), flush=True)
                rows.append(row)
            ref.unlink()
    summary = {mode: {"rounds": sum(r["mode"] == mode for r in rows),
                      "corrupt": sum(bool(r["problems"]) for r in rows if r["mode"] == mode),
                      "second_run_refused": sum(r["refused"] for r in rows if r["mode"] == mode)}
               for mode in MODES}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "concurrency_check.json").write_text(json.dumps(
        {"command": "python benchmarks/concurrency_check.py " + " ".join(argv or sys.argv[1:]),
         "restore_args": list(FAST), "modes": {k: list(v) for k, v in MODES.items()},
         "summary": summary, "rounds": rows}, indent=1) + "\n")
    lines = ["# Two runs on one output (benchmarks/concurrency_check.py)", "",
             f"Command: `python benchmarks/concurrency_check.py {' '.join(argv or sys.argv[1:])}`; a 160x160 noisy "
             f"PNG, `{' '.join(FAST)}`, second run started 0-{args.gap} s after the first.", "",
             "| mode | rounds | corrupt | runs refused (one line) |", "| --- | --- | --- | --- |"]
    lines += [f"| {mode} {' '.join(MODES[mode])} | {s['rounds']} | {s['corrupt']} | {s['second_run_refused']} |"
              for mode, s in summary.items()]
    (RESULTS / "concurrency_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if any(s["corrupt"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
