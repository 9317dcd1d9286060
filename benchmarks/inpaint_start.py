"""Inpainting before and after the inpainting splitting start (issue 22, Build point 2).

For each photo of the given sets: its 256x256 centre crop, holes as the standard benchmark's
inpaint task makes them (``standard_tasks.blob_holes``: discs of 8-32 px until 20% is hidden,
seeded by ``protocol.seed_for('inpaint', name)``), no noise, restored in-process with ``--sigma 0``
and the mask given. Methods, every one on the same crop in one run:

* before: ``start='blur'``, what a mask-only restore ran before (the blurred start, 150 flow-MAP
  iterations);
* fill: the smooth fill alone (``flowrt.solve.inpaint.smooth_fill``, the splitting's start);
* after: the defaults (the inpainting splitting with the flow denoiser);
* grouped: the defaults with ``denoiser='grouped'`` (the ablation).

PSNR (RGB, 8-bit) inside the holes and over all pixels, seconds per crop. Appends one JSON line per
(photo, method) to --jsonl as it goes; --picture saves observed | before | after | clean of the
first photo as a PNG. ``--summarize OUT_PREFIX`` instead reads the --jsonl files and writes
OUT_PREFIX.table.md and OUT_PREFIX.json: per set and method, the mean PSNRs and seconds and the photo count.

    python -m benchmarks.inpaint_start --sets ../shared/data/val-photos ../shared/data/val \
        --jsonl benchmarks/results/inpaint_start/inpaint_start.jsonl \
        --picture benchmarks/results/inpaint_start/before_after.png
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.protocol import list_photos, load_photo, seed_for
from benchmarks.standard_tasks import blob_holes

CROP = 256
METHODS = {"before": dict(start="blur"), "after": {}, "grouped": dict(denoiser="grouped")}


def psnr(reference: np.ndarray, image: np.ndarray, where: np.ndarray) -> float:
    """RGB PSNR (dB) of uint8 images over the pixels ``where`` (bool (H, W)) is True."""
    error = (reference.astype(np.float64) - image.astype(np.float64))[where]
    return float(10 * np.log10(255.0 ** 2 / max(np.mean(error ** 2), 1e-12)))


def run_method(observed: np.ndarray, holes: np.ndarray, method: str) -> tuple:
    """(restored uint8 (H, W, 3), seconds, the plan's words) for one method."""
    start = time.monotonic()
    if method == "fill":
        from flowrt.solve.inpaint import smooth_fill
        y = (observed.astype(np.float32) / 255).transpose(2, 0, 1)[None]
        filled = smooth_fill(y, (~holes).astype(np.float32)[None, None])[0].transpose(1, 2, 0)
        return np.round(filled * 255).astype(np.uint8), time.monotonic() - start, "smooth fill alone"
    from flowrt.api import restore
    result = restore(observed, mask=holes, sigma=0, **METHODS[method])
    return result.image, time.monotonic() - start, result.plan.describe_method()


def summarize(rows: list, prefix: Path) -> None:
    """Per (set, method) means over the photos every method finished, as prefix.md and prefix.json."""
    done: dict = {}
    for row in rows:
        done.setdefault((row["set"], row["photo"]), {})[row["method"]] = row
    methods = [m for m in ("before", "fill", "grouped", "after") if any(m in d for d in done.values())]
    table = []
    for name in sorted({s for s, _ in done}):
        complete = [d for (s, _), d in done.items() if s == name and all(m in d for m in methods)]
        if not complete:
            continue
        for method in methods:
            picked = [d[method] for d in complete]
            table.append(dict(set=name, method=method, photos=len(picked),
                              psnr_holes=round(float(np.mean([r["psnr_holes"] for r in picked])), 2),
                              psnr_all=round(float(np.mean([r["psnr_all"] for r in picked])), 2),
                              seconds=round(float(np.mean([r["seconds"] for r in picked])), 1),
                              plan=picked[0]["plan"] if picked else ""))
    prefix.with_suffix(".json").write_text(json.dumps(dict(summary=table, rows=rows), indent=1) + "\n")
    lines = ["| set | method | photos | PSNR holes (dB) | PSNR all (dB) | s / crop |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['set']} | {r['method']} | {r['photos']} | {r['psnr_holes']:.2f} | {r['psnr_all']:.2f} | "
              f"{r['seconds']:.1f} |" for r in table]
    prefix.with_suffix(".table.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=["fill", "after", "grouped", "before"])
    parser.add_argument("--jsonl", type=Path, nargs="+", required=True)
    parser.add_argument("--summarize", type=Path, help="write PREFIX.json and PREFIX.table.md from --jsonl and stop")
    parser.add_argument("--picture", type=Path)
    args = parser.parse_args()
    if args.summarize:
        summarize([json.loads(line) for path in args.jsonl for line in path.read_text().splitlines()], args.summarize)
        return
    jsonl = args.jsonl[0]
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    pictured = args.picture is None
    for folder in args.sets:
        for path in list_photos(folder):
            clean = load_photo(path, CROP)
            holes = blob_holes(*clean.shape[:2], 0.2, np.random.default_rng(seed_for("inpaint", path.name)))
            observed = np.where(holes[..., None], 0, clean).astype(np.uint8)
            outputs = {}
            for method in args.methods:
                restored, seconds, words = run_method(observed, holes, method)
                outputs[method] = restored
                row = dict(set=folder.name, photo=path.name, method=method, seconds=round(seconds, 2),
                           psnr_holes=round(psnr(clean, restored, holes), 3),
                           psnr_all=round(psnr(clean, restored, np.ones_like(holes)), 3), plan=words)
                print(json.dumps(row), flush=True)
                with open(jsonl, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
            if not pictured and {"before", "after"} <= set(outputs):
                strip = np.concatenate([observed, outputs["before"], outputs["after"], clean], axis=1)
                Image.fromarray(strip).save(args.picture, optimize=True)
                pictured = True


if __name__ == "__main__":
    main()
