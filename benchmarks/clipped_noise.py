"""What undoing the clipping of 8-bit noise gives each denoiser, and what the flow adds after it.

Whole photos of each folder (or their centre crops, ``--crop``), noise added, rounded and clipped to 8 bits (seeded by the photo's
path), RGB PSNR over all pixels. Rows, all in one invocation on the same noisy photos:

- ``grouped``: the grouped denoiser (``denoise_rgb``), as the pipeline ran it before the map back;
- ``grouped+unclip``: the same, then ``flowrt.numeric.clipping.unclip`` (what ``--denoiser grouped``
  restores now);
- ``flow`` / ``flow+unclip``: the flow denoiser of each ``--tables`` entry (a fit's ``group_flow.npz``,
  an exported ``denoiser.onnx``, a model folder with both its stages, or ``packaged`` for the packaged
  model's), without and with the map back;
- ``bm3d`` / ``bm3d+unclip``: the ``bm3d`` package (colour, default profile), without and with it.

    python benchmarks/clipped_noise.py --data ../shared/data/val-photos --sigmas 15,25,50 \
        --tables packaged --out benchmarks/results/clipped_noise/val-photos
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import psnr  # noqa: E402

from flowrt.denoise.grouped import denoise_rgb  # noqa: E402
from flowrt.numeric.clipping import unclip  # noqa: E402


def noisy_photo(path: Path, sigma_255: float, crop: int = 0):
    """(clean, noisy) float32 (H, W, 3) in [0, 1]: the photo (its centre crop x crop when crop > 0)."""
    from PIL import Image
    clean = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
    if crop:
        top, left = max(0, (clean.shape[0] - crop) // 2), max(0, (clean.shape[1] - crop) // 2)
        clean = np.ascontiguousarray(clean[top:top + crop, left:left + crop])
    rng = np.random.default_rng(zlib.crc32(f"{path.name}:{sigma_255:g}".encode()))
    noisy = np.clip(np.round(clean * 255.0 + sigma_255 * rng.standard_normal(clean.shape)), 0, 255) / 255.0
    return clean, noisy.astype(np.float32)


def flow_denoiser(spec: str):
    """The FlowDenoiser of a fit file (``group_flow.npz``: one stage), of an exported graph
    (``denoiser.onnx``: its first stage alone), of a model folder (its first stage, and its second
    where it has one) or of the packaged model ('packaged')."""
    from flowrt.denoise.flow import FlowDenoiser, GroupTables, packaged_flow_denoiser
    if spec == "packaged":
        return packaged_flow_denoiser()
    if Path(spec).is_dir():
        return FlowDenoiser.from_model_dir(Path(spec))
    if spec.endswith(".onnx"):
        return FlowDenoiser(GroupTables.from_graph(Path(spec)))
    from flowrt.prior.group_flow import TableConfig, slot_index
    from flowrt.train.group_fit import axes_of
    fit = np.load(spec)
    meta = json.loads(str(fit["meta"]))
    cfg = TableConfig(**meta["config"])
    half = lambda t: t.astype(np.float16).astype(np.float32)  # noqa: E731 - as the export stores them
    tables = GroupTables(half(fit["gain"]), half(fit["weight"]), slot_index(cfg.group).numpy().astype(np.int64),
                         axes_of(cfg), meta.get("target", "clean"))
    return FlowDenoiser(tables)


def table_label(spec: str) -> str:
    """A row's name for a ``--tables`` entry: 'packaged', a folder's name, or parent/stem of a file."""
    if spec == "packaged":
        return spec
    path = Path(spec)
    return path.name if path.is_dir() else f"{path.parent.name}/{path.stem}"


def bm3d_colour(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d
    return np.clip(bm3d.bm3d_rgb(noisy, sigma), 0.0, 1.0).astype(np.float32)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def run_photo(path: Path, sigma_255: float, flows: dict, with_bm3d: bool, crop: int = 0) -> dict:
    clean, noisy = noisy_photo(path, sigma_255, crop)
    sigma = sigma_255 / 255.0
    row = {"input": (psnr(noisy, clean), 0.0)}
    out, sec = timed(denoise_rgb, noisy, sigma)
    row["grouped"] = (psnr(out, clean), sec)
    row["grouped+unclip"] = (psnr(unclip(out, sigma), clean), sec)
    for name, denoiser in flows.items():
        out, sec = timed(denoiser.denoise, noisy, sigma)
        row[f"flow {name}"] = (psnr(out, clean), sec)
        row[f"flow {name}+unclip"] = (psnr(unclip(out, sigma), clean), sec)
    if with_bm3d:
        out, sec = timed(bm3d_colour, noisy, sigma)
        row["bm3d"] = (psnr(out, clean), sec)
        row["bm3d+unclip"] = (psnr(unclip(out, sigma), clean), sec)
    return row


def table(results: dict, heading: str = "noise {}", extra=None) -> str:
    """Markdown: one section per key of ``results`` (``heading`` formatted with it), a row per photo
    of (PSNR, seconds) cells by name, the mean and the mean seconds. ``extra``: None, or (title,
    fn) adding a column fn({name: PSNR}) shown signed (a difference between rows)."""
    lines = []
    for key, photos in results.items():
        names = list(next(iter(photos.values())))
        title = f" {extra[0]} |" if extra else ""
        lines += [f"### {heading.format(key)}", "", "| photo | " + " | ".join(names) + " |" + title,
                  "| --- |" + " --- |" * (len(names) + bool(extra))]
        for photo, row in photos.items():
            cell = f" {extra[1]({n: row[n][0] for n in names}):+.2f} |" if extra else ""
            lines.append(f"| {photo} | " + " | ".join(f"{row[n][0]:.2f}" for n in names) + " |" + cell)
        mean = {n: np.mean([r[n][0] for r in photos.values()]) for n in names}
        secs = {n: np.mean([r[n][1] for r in photos.values()]) for n in names}
        cell = f" **{extra[1](mean):+.2f}** |" if extra else ""
        lines.append("| **mean** | " + " | ".join(f"**{mean[n]:.2f}**" for n in names) + " |" + cell)
        lines.append("| seconds | " + " | ".join(f"{secs[n]:.1f}" for n in names) + " |" + (" |" if extra else ""))
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of clean PNG photos")
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--tables", nargs="*", default=["packaged"], help="group_flow.npz fits, denoiser.onnx graphs, model folders, or 'packaged'")
    ap.add_argument("--no-bm3d", action="store_true")
    ap.add_argument("--crop", type=int, default=0, help="centre crops of this side (0: whole photos)")
    ap.add_argument("--out", required=True, help="folder for results.json and results.md")
    args = ap.parse_args(argv)
    flows = {table_label(spec): flow_denoiser(spec) for spec in args.tables}
    results = {}
    for sigma in (float(s) for s in args.sigmas.split(",")):
        photos = {}
        for path in sorted(Path(args.data).glob("*.png")):
            photos[path.name] = run_photo(path, sigma, flows, not args.no_bm3d, args.crop)
            print(f"[{path.name} noise {sigma:g}] " + " ".join(f"{k} {v[0]:.2f}" for k, v in photos[path.name].items()),
                  flush=True)
        results[f"{sigma:g}"] = photos
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"argv": sys.argv[1:], "results": results}, indent=1))
    (out / "results.md").write_text(f"`python benchmarks/clipped_noise.py {' '.join(sys.argv[1:])}`\n\n"
                                    f"PSNR dB, {'whole photos' if not args.crop else f'{args.crop}x{args.crop} centre crops'}; seconds per photo of the denoiser (the map back "
                                    "takes milliseconds)\n\n" + table(results))
    print(table(results))


if __name__ == "__main__":
    main()
