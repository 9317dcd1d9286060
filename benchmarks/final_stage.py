"""What the flow denoiser's final stage adds to the splitting (upscaling, deblurring), side by side.

Centre crops of each photo of a folder, degraded as ``flowrt.train.split_data`` does (Pillow bicubic
down by 2, 3 or 4, no noise; Gaussian blur 1.6 px plus noise 2, seeded by the photo's name), restored
in-process by ``flowrt.restore`` at its defaults with three denoisers, all in one invocation:

- ``grouped``: ``--denoiser grouped`` (the Wiener pass in every refining round);
- ``flow, no final``: the flow denoiser without a final stage (its first stage's tables, the Wiener
  pass in the splitting's last round);
- ``flow``: the flow denoiser with the final stage of ``--final`` (a fit's ``group_flow.npz`` or an
  exported ``denoiser_final.onnx``; default: the packaged model's).

RGB PSNR over all pixels against the clean crop; bicubic for the upscaling tasks as a reference.
sr4 is held out: the final stage is fitted on sr2, sr3 and deblurring only.

    python benchmarks/final_stage.py --data ../shared/data/val-photos --crop 256 --out OUT
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
from clipped_noise import table as results_table  # noqa: E402
from metrics import psnr  # noqa: E402



def tasks() -> dict:
    """The final stage's training degradations (``split_data.TASKS``) and the held-out x4."""
    from flowrt.train.split_data import TASKS, SplitTask
    return {**TASKS, "sr4": SplitTask(scale=4)}


def final_tables(spec: str | None):
    """The final stage's GroupTables: the packaged model's (None), a fit file, or a graph."""
    from flowrt.denoise.flow import GroupTables, packaged_flow_denoiser
    if spec is None:
        tables = packaged_flow_denoiser().final
        if tables is None:
            raise SystemExit("the packaged model has no final stage: give --final FIT")
        return tables
    if spec.endswith(".onnx"):
        return GroupTables.from_graph(Path(spec))
    from clipped_noise import flow_denoiser
    return flow_denoiser(spec).tables   # a fit file read as the export stores it


def denoisers(final_spec: str | None) -> dict:
    """name -> factory of each compared denoiser, registered for ``flowrt.restore``."""
    from flowrt.denoise.base import DENOISERS, GroupedDenoiser
    from flowrt.denoise.flow import FlowDenoiser, packaged_flow_denoiser
    packaged = packaged_flow_denoiser()
    final = final_tables(final_spec)
    variants = {"grouped": GroupedDenoiser,
                "flow, no final": lambda: FlowDenoiser(packaged.tables, packaged.refine),
                "flow": lambda: FlowDenoiser(packaged.tables, packaged.refine, final)}
    for name, factory in variants.items():
        DENOISERS[f"bench:{name}"] = factory
    return variants


def run_photo(path: Path, crop: int, name: str, task, names) -> dict:
    """One photo's row: its centre crop degraded by ``task`` (a ``split_data.SplitTask`` named
    ``name``, seeded by the photo and the name), restored with each denoiser of ``names``."""
    import flowrt
    from PIL import Image

    from flowrt.train.split_data import degrade
    image = np.asarray(Image.open(path).convert("RGB"))
    side = crop - crop % task.scale
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    clean = np.ascontiguousarray(image[top:top + side, left:left + side])
    rng = np.random.default_rng(zlib.crc32(f"{path.name}:{name}".encode()))
    observed, options = degrade(clean.astype(np.float32) / 255.0, task, rng), task.options
    row = {}
    if task.scale > 1:
        bicubic = np.asarray(Image.fromarray(observed).resize((side, side), Image.BICUBIC))
        row["bicubic"] = (psnr(bicubic, clean), 0.0)
    for name in names:
        started = time.perf_counter()
        out = flowrt.restore(observed, denoiser=f"bench:{name}", **options).image
        row[name] = (psnr(np.asarray(out), clean), time.perf_counter() - started)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of clean PNG photos")
    ap.add_argument("--crop", type=int, default=256, help="centre crop side (cut to the task's scale)")
    ap.add_argument("--tasks", default="sr2,sr3,sr4,deblur")
    ap.add_argument("--final", help="the final stage: a fit's group_flow.npz or a denoiser_final.onnx "
                                    "(default: the packaged model's)")
    ap.add_argument("--out", required=True, help="folder for results.json and results.md")
    args = ap.parse_args(argv)
    names = list(denoisers(args.final))
    known = tasks()
    results = {}
    for task in args.tasks.split(","):
        if task not in known:
            ap.error(f"--tasks takes {', '.join(known)}; not {task}")
        photos = {}
        for path in sorted(Path(args.data).glob("*.png")):
            photos[path.name] = run_photo(path, args.crop, task, known[task], names)
            print(f"[{task} {path.name}] " + " ".join(f"{k} {v[0]:.2f}" for k, v in photos[path.name].items()),
                  flush=True)
        results[task] = photos
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    text = results_table(results, "{}", ("flow - grouped", lambda row: row["flow"] - row["grouped"]))
    (out / "results.md").write_text(f"`python benchmarks/final_stage.py {' '.join(sys.argv[1:])}`\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
