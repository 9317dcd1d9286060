"""The flow denoiser's learning curve: denoising PSNR against the data (shards) and CPU time it took.

For each shard count N, the group flow is fitted to the first N shards (``flowrt.train.group_fit``,
closed form) and the resulting flow denoiser is run on 256x256 centre crops of a photo folder at
noise 15 / 25 / 50 (added, rounded and clipped to 8 bits, seeded per photo and sigma), beside the
grouped denoiser on the same noisy crops (``denoise_rgb``, its Wiener pass: the flow's starting
point). CPU time per leg = the shards' generation time (from the generator's log, wall-clock
seconds of one single-threaded process) + the fit's process time.

    python benchmarks/flow_denoiser_curve.py --shards /path/to/shards --log /path/to/group_data.log \
        --data ../shared/data/val-photos --counts 1,3,10,41 --out benchmarks/results/flow_denoiser
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402

from flowrt.denoise.flow import GroupTables  # noqa: E402
from flowrt.denoise.grouped import denoise_rgb  # noqa: E402
from flowrt.prior.group_flow import TableConfig, slot_index  # noqa: E402
from flowrt.train import group_data, group_fit  # noqa: E402

SIGMAS = (15, 25, 50)


def centre_crops(folder: Path, side: int):
    from PIL import Image
    crops = {}
    for path in sorted(folder.glob("*.png")):
        img = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
        h, w, _ = img.shape
        top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
        crops[path.stem] = np.ascontiguousarray(img[top:top + side, left:left + side])
    return crops


def noisy(clean: np.ndarray, sigma_255: float, seed: int) -> np.ndarray:
    return group_data.noisy_copy(clean, sigma_255, np.random.default_rng(seed))


def shard_seconds(log: Path) -> dict:
    """shard name -> seconds to generate it, from the generator's log lines."""
    found = {}
    for line in log.read_text().splitlines():
        m = re.search(r"(shard-\d+\.npz): \d+ channel-groups in ([\d.]+) s", line)
        if m:
            found[m.group(1)] = float(m.group(2))
    return found


def evaluate(tables, crops, baseline) -> dict:
    out = {}
    for s in SIGMAS:
        gains = []
        for i, (name, clean) in enumerate(crops.items()):
            y = noisy(clean, s, 1000 + 7 * i + s)
            flow = denoise_rgb(y, s / 255, group_filter=tables.filter_grouping)
            gains.append(psnr(flow, clean) - baseline[(name, s)])
        out[s] = {"flow": float(np.mean([baseline[(n, s)] for n in crops]) + np.mean(gains)),
                  "gain": float(np.mean(gains)), "per_photo_gain": [round(float(g), 3) for g in gains]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", required=True)
    ap.add_argument("--log", required=True, help="the shard generator's log (for its seconds per shard)")
    ap.add_argument("--data", default="../shared/data/val-photos")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--counts", default="1,3,10,41")
    ap.add_argument("--ridge", type=float, default=0.5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    crops = centre_crops(Path(args.data), args.crop)
    baseline = {(n, s): psnr(denoise_rgb(noisy(c, s, 1000 + 7 * i + s), s / 255), c)
                for s in SIGMAS for i, (n, c) in enumerate(crops.items())}
    seconds = shard_seconds(Path(args.log))
    cfg = TableConfig()
    rows = int(slot_index(cfg.group).max()) + 1
    legs = []
    for count in (int(c) for c in args.counts.split(",")):
        started = time.process_time()
        stats = group_fit.add_shards(group_fit.Stats.empty(cfg, rows), args.shards, count, log=lambda s: None)
        tables = GroupTables(*group_fit.solve_tables(stats.sums, cfg, args.ridge), slot_index(cfg.group).numpy(),
                             group_fit.axes_of(cfg))
        fit_s = time.process_time() - started
        data_s = sum(seconds.get(name, float("nan")) for name in stats.shards)
        leg = {"shards": count, "data_s": round(data_s, 1), "fit_s": round(fit_s, 1),
               "cpu_hours": round((data_s + fit_s) / 3600, 3), "psnr": evaluate(tables, crops, baseline)}
        legs.append(leg)
        print(json.dumps(leg), flush=True)
    grouped = {s: float(np.mean([baseline[(n, s)] for n in crops])) for s in SIGMAS}
    write(Path(args.out), {"data": args.data, "crop": args.crop, "ridge": args.ridge, "grouped": grouped,
                           "photos": list(crops), "legs": legs, "command": " ".join(sys.argv)})


def write(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Flow denoiser learning curve ({Path(result['data']).name}, {result['crop']}x{result['crop']} centre crops)",
             "", f"`{result['command']}`", "",
             "| shards | CPU-hours (data + fit) | " + " | ".join(f"noise {s}: flow (gain over grouped)" for s in SIGMAS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in SIGMAS) + " |"]
    lines.append("| 0 (grouped denoiser, Wiener pass) | 0 | " + " | ".join(f"{result['grouped'][s]:.2f}" for s in SIGMAS) + " |")
    for leg in result["legs"]:
        cells = " | ".join(f"{leg['psnr'][s]['flow']:.2f} ({leg['psnr'][s]['gain']:+.2f})" for s in SIGMAS)
        lines.append(f"| {leg['shards']} | {leg['cpu_hours']:.3f} | {cells} |")
    (out / "curve.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
