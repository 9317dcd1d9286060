"""Out of the box: `flowrt restore IN -o OUT` with no other argument must raise PSNR.

Degrades every photo of a folder with the noise (sigma 25, PNG) and jpeg (quality 20)
tasks of benchmarks/protocol.py, runs the installed CLI with no flags at all (default
prior, --sigma auto, the JPEG's own tables), and writes
benchmarks/results/no_flags.{json,md}.

    python benchmarks/no_flags.py --data ../shared/data/val --crop 256
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402
from protocol import TASKS, degrade, list_photos, load_photo, seed_for  # noqa: E402


def run_one(photo: Path, task_name: str, crop, work: Path) -> dict:
    task = TASKS[task_name]
    clean = load_photo(photo, crop)
    reference, encoded = degrade(clean, task, seed_for(task.name, photo.name))
    src = work / f"{photo.stem}_{task_name}{task.suffix}"
    src.write_bytes(encoded)
    out = work / f"{photo.stem}_{task_name}_restored.png"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flowrt.cli.main", "restore", str(src), "-o", str(out), "-v"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"photo": photo.name, "task": task_name, "error": proc.stderr.strip().splitlines()[-1]}
    ref = reference.astype(np.float64) / 255.0
    observed = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64) / 255.0
    restored = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64) / 255.0
    said = [line for line in proc.stderr.splitlines() if "noise" in line or "JPEG" in line]
    return {"photo": photo.name, "task": task_name, "input_psnr": psnr(ref, observed),
            "psnr": psnr(ref, restored), "seconds": seconds, "plan": said[0] if said else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/val")
    ap.add_argument("--crop", type=int, default=None, help="centre crops of this side (default: whole photos)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for photo in list_photos(Path(args.data), args.limit):
            for task_name in ("noise", "jpeg"):
                rows.append(run_one(photo, task_name, args.crop, Path(tmp)))
                r = rows[-1]
                print(r.get("error") or f"{r['photo']} {task_name}: {r['input_psnr']:.2f} -> {r['psnr']:.2f} dB "
                      f"({r['seconds']:.0f} s)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "no_flags.json").write_text(json.dumps({"crop": args.crop, "rows": rows}, indent=2))
    size = f"{args.crop}x{args.crop} centre crops" if args.crop else "whole photos"
    lines = [f"# `flowrt restore IN -o OUT`, no flags, on {args.data} ({size})", "",
             "| photo | task | input PSNR | restored PSNR | gain | s | what auto chose |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['photo']} | {r['task']} | failed: {r['error']} | | | | |")
        else:
            lines.append(f"| {r['photo']} | {r['task']} | {r['input_psnr']:.2f} | {r['psnr']:.2f} | "
                         f"{r['psnr'] - r['input_psnr']:+.2f} | {r['seconds']:.0f} | {r['plan']} |")
    worse = [r for r in rows if "error" in r or r["psnr"] <= r["input_psnr"]]
    lines += ["", f"Outputs that did not raise PSNR: {len(worse)} of {len(rows)}.", "",
              f"Command: `python benchmarks/no_flags.py --data {args.data}" + (f" --crop {args.crop}`" if args.crop else "`")]
    (out / "no_flags.md").write_text("\n".join(lines) + "\n")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
