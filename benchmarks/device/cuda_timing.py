"""The torch CUDA engine's restore time on 512x512 and 2048x2048 noisy images (run by run.sh on a
GPU machine): one fresh ``flowrt restore`` process per run, noise 25, the MAP on CUDA
(``--engine torch --device cuda --iters 20``), beside the same restore on the CPU's default engine.

    python benchmarks/device/cuda_timing.py --sizes 512,2048 --out timing.json
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

RUNS = {
    "cuda_torch_map20": ["--engine", "torch", "--device", "cuda", "--iters", "20"],
    "cpu_default": [],
}


def noisy_image(path: Path, side: int) -> None:
    from PIL import Image
    yy, xx = np.mgrid[0:side, 0:side] / side
    clean = 0.5 + 0.3 * np.stack([np.sin(9 * xx + c) * np.cos(7 * yy) for c in range(3)], axis=2)
    noisy = clean * 255 + 25 * np.random.default_rng(0).standard_normal(clean.shape)
    Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8)).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,2048")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in (int(s) for s in args.sizes.split(",")):
            src = Path(tmp) / f"n{side}.png"
            noisy_image(src, side)
            for name, flags in RUNS.items():
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "flowrt.cli.main", "restore", str(src), "-o",
                                       str(Path(tmp) / f"o{side}-{name}.png"), "--sigma", "25", "-q", *flags],
                                      capture_output=True, text=True)
                results.append({"size": side, "run": name, "seconds": round(time.perf_counter() - started, 2),
                                "status": done.returncode, "error": done.stderr.strip().splitlines()[-1:]})
                print(json.dumps(results[-1]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
