"""Noiseless x2 super-resolution: the splitting start against the MAP from the observation.

For each photo of the given sets: its 256x256 centre crop, downsampled x1/2 with Pillow's bicubic
and rounded to 8 bits (the standard benchmark's sr2 task on a crop), restored by the real CLI in a
fresh process with ``--scale 2 --sigma 0``. Methods, all on the same crop in one run, taking turns:

* bicubic: Pillow's bicubic x2 of the observation (the floor);
* map: ``--start blur``, what a noiseless chain ran before (150 flow-MAP iterations);
* split: the defaults (the splitting start with the flow denoiser, then a few MAP iterations);
* split-grouped: the defaults with ``--denoiser grouped`` (the ablation: the same pipeline without
  the flow denoiser).

RGB PSNR over all pixels (8-bit outputs) and wall-clock seconds per crop (start-up included).
Writes OUT.json and OUT.md.

    python benchmarks/noiseless_split.py --sets ../shared/data/val-photos ../shared/data/val \
        --out benchmarks/results/split_start/noiseless
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402
from protocol import list_photos, load_photo  # noqa: E402

CROP = 256
METHODS = {"map": ["--start", "blur"], "split": [], "split-grouped": ["--denoiser", "grouped"]}


def run_cli(small: Path, out: Path, flags) -> float:
    """Seconds for one CLI restore in a fresh process (one thread)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flowrt.cli.main", "restore", str(small), "-o", str(out), "--scale", "2",
                    "--sigma", "0", "-q", *flags], check=True, env=env)
    return time.perf_counter() - start


def measure(photo: Path, work: Path) -> dict:
    clean = load_photo(photo, CROP)
    small_img = Image.fromarray(clean).resize((CROP // 2, CROP // 2), Image.BICUBIC)
    small = work / f"{photo.stem}_small.png"
    small_img.save(small)
    enlarged = np.asarray(small_img.resize((CROP, CROP), Image.BICUBIC))
    row = {"photo": photo.name, "bicubic": {"psnr": psnr(clean, enlarged), "seconds": 0.0}}
    for name, flags in METHODS.items():
        out = work / f"{photo.stem}_{name}.png"
        seconds = run_cli(small, out, flags)
        row[name] = {"psnr": psnr(clean, np.asarray(Image.open(out).convert("RGB"))), "seconds": seconds}
    return row


def table(rows_by_set: dict) -> str:
    names = ["bicubic", *METHODS]
    lines = ["| set | photos | " + " | ".join(names) + " | split - map | split - split-grouped |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " | --- | --- |"]
    for set_name, rows in rows_by_set.items():
        mean = {n: float(np.mean([r[n]["psnr"] for r in rows])) for n in names}
        secs = {n: float(np.mean([r[n]["seconds"] for r in rows])) for n in names}
        cells = [f"{mean[n]:.2f}" + (f" ({secs[n]:.1f} s)" if n != "bicubic" else "") for n in names]
        lines.append(f"| {set_name} | {len(rows)} | " + " | ".join(cells)
                     + f" | {mean['split'] - mean['map']:+.2f} | {mean['split'] - mean['split-grouped']:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", required=True)
    parser.add_argument("--out", required=True, help="OUT.json and OUT.md are written")
    args = parser.parse_args()
    rows_by_set = {}
    with tempfile.TemporaryDirectory() as tmp:
        for folder in args.sets:
            rows = []
            for photo in list_photos(Path(folder)):
                rows.append(measure(photo, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
            rows_by_set[Path(folder).name] = rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/noiseless_split.py " + " ".join(sys.argv[1:])
    out.with_suffix(".json").write_text(json.dumps({"command": command, "sets": rows_by_set}, indent=1))
    out.with_suffix(".md").write_text(
        "# Noiseless x2 super-resolution: splitting start against the MAP from the observation\n\n"
        f"Command: `{command}`\n\n256x256 centre crops, Pillow bicubic x1/2 rounded to 8 bits, `--scale 2 --sigma 0`; "
        "mean RGB PSNR (dB) and seconds per crop (a fresh CLI process, one thread), every method on the same "
        "crops in one run.\n\n" + table(rows_by_set) + "\n")


if __name__ == "__main__":
    main()
