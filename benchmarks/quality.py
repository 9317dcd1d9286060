"""Side-by-side restoration quality: flowrt against the peers a user would pick instead.

Degrades the photos of a folder with the standard protocol (benchmarks/protocol.py), restores
each with every method, and writes quality.json and quality.md (PSNR / SSIM / MS-SSIM /
seconds per image) to --out. Two image sets:
- main: the photos (or their --crop centre crops), every method but those in --crops-only;
- dip:  --dip-crop centre crops of the first --dip-photos photos, every method including DIP
        (DIP, and on a busy CPU also BM3D, are far too slow for whole photos).

    python benchmarks/quality.py --data ../shared/data/val --out benchmarks/results

A method that fails on an image is recorded as failed there and the run goes on; the exit code is
then 1. Peers are optional: bm3d (pip), jpegqs (apt), scikit-image.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    # Run as a script: import `benchmarks.*` from the repo root rather than exposing this
    # folder's modules (protocol, metrics) as top-level names.
    sys.path[0] = str(_REPO)
elif str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from benchmarks.metrics import ms_ssim, psnr, ssim  # noqa: E402
from benchmarks.peers.base import upsampled_observation  # noqa: E402
from benchmarks.protocol import (PHOTO_SUFFIXES, TASKS, Degraded, list_photos,  # noqa: E402
                                 load_photo, write_degraded)
from benchmarks.quality_report import (METHOD_ORDER, render_markdown, rounded,  # noqa: E402
                                       summarise, write_atomic)

PROTOCOL_SUMMARY = (
    "noise = clip(round(x + N(0, 25^2))) as PNG, flowrt --sigma 25; jpeg = Pillow JPEG quality "
    "20, restored from the .jpg; multi = crop to even sides, Pillow bicubic x1/2, + N(0, 8^2) "
    "rounded, JPEG quality 50, flowrt --scale 2 --sigma 8. Seeds from sha256(task/file name). "
    "Outputs are rounded to 8 bits before scoring.")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of clean photos")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--limit", type=int, help="use the first N photos (sorted by name)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma list of noise,jpeg,multi")
    parser.add_argument("--methods", default=",".join(METHOD_ORDER),
                        help="comma list of " + ",".join(METHOD_ORDER))
    parser.add_argument("--crop", type=int, help="main set: centre crops of this side")
    parser.add_argument("--flowrt-args", default="", help='extra flowrt flags, e.g. "--iters 100"')
    parser.add_argument("--dip-photos", type=int, default=3, help="photos in the DIP set (0: none)")
    parser.add_argument("--dip-crop", type=int, default=128,
                        help="side of the crop set's crops (DIP needs thousands of CPU steps to "
                             "converge at 256; see benchmarks/README.md)")
    parser.add_argument("--dip-iters", type=int, default=400, help="Adam steps per DIP fit")
    parser.add_argument("--dip-width", type=int, default=32, help="DIP channels (paper: 128)")
    parser.add_argument("--crops-only", default="dip",
                        help="comma list of methods run only on the DIP crop set (dip always is); "
                             "e.g. dip,bm3d when BM3D is too slow for whole photos")
    parser.add_argument("--dip-device", default="cpu", help="torch device for DIP")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (DIP)")
    parser.add_argument("--save-images", type=Path,
                        help="keep degraded inputs and every output under this folder")
    args = parser.parse_args(argv)
    args.tasks = _split(parser, args.tasks, TASKS, "task")
    args.methods = _split(parser, args.methods, METHOD_ORDER, "method")
    args.crops_only = sorted(set(_split(parser, args.crops_only or "dip", METHOD_ORDER, "method"))
                             | {"dip"})
    for name in ("limit", "crop", "dip_crop", "dip_iters", "dip_width", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.dip_photos < 0:
        parser.error("--dip-photos must be >= 0")
    return args


def _split(parser: argparse.ArgumentParser, text: str, known, kind: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(f"unknown {kind}(s) {unknown or text!r}; choose from {', '.join(known)}")
    return [n for n in known if n in names]  # canonical order, no duplicates


def build_methods(args: argparse.Namespace) -> dict:
    """The selected methods by name; exits with one line if one cannot run here."""
    from benchmarks.peers.bm3d_peer import Bm3dMethod
    from benchmarks.peers.flowrt_cli import FlowrtMethod
    from benchmarks.peers.jpegqs_peer import JpegqsMethod
    from benchmarks.peers.simple import InputMethod, TvMethod

    factories = {"input": InputMethod, "tv": TvMethod, "bm3d": Bm3dMethod,
                 "jpegqs": JpegqsMethod, "flowrt": lambda: FlowrtMethod(args.flowrt_args)}
    if "dip" in args.methods:
        from benchmarks.peers.dip import DipMethod, DipSettings
        factories["dip"] = lambda: DipMethod(DipSettings(
            iterations=args.dip_iters, width=args.dip_width, device=args.dip_device))
    methods = {name: factories[name]() for name in args.methods}
    for name, method in methods.items():
        reason = method.missing()
        if reason:
            raise SystemExit(f"error: method {name} cannot run: {reason} "
                             f"(leave it out with --methods)")
    return methods


def degrade_set(photos: list[Path], tasks: list[str], crop: int | None,
                folder: Path) -> dict[str, list[Degraded]]:
    """task -> degraded items, photos in order."""
    clean = {photo.name: load_photo(photo, crop) for photo in photos}
    return {task: [write_degraded(pixels, name, TASKS[task], folder) for name, pixels in clean.items()]
            for task in tasks}


def restore_and_score(method, item: Degraded, workdir: Path, save: Path | None) -> dict:
    """One method on one image: the per-image record (metrics and seconds, or an error)."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        output = np.asarray(method.restore(item, workdir))
    except Exception as exc:  # noqa: BLE001 - one peer crashing must not lose the whole run
        return {"image": item.name, "error": f"{type(exc).__name__}: {exc}"}
    seconds = time.perf_counter() - start
    if output.shape != item.clean.shape:
        return {"image": item.name, "error": f"output shape {output.shape} != {item.clean.shape}"}
    if output.dtype != np.uint8:
        if not np.all(np.isfinite(output)):
            return {"image": item.name, "error": "NaN or inf in the output"}
        # Score what a user would save: 8-bit pixels.
        output = np.clip(np.round(output * 255.0), 0, 255).astype(np.uint8)
    if save is not None:
        from PIL import Image
        save.mkdir(parents=True, exist_ok=True)
        Image.fromarray(output).save(save / (Path(item.name).stem + ".png"))
    return {"image": item.name, "psnr": psnr(item.clean, output), "ssim": ssim(item.clean, output),
            "ms_ssim": ms_ssim(item.clean, output), "seconds": seconds}


def run_set(label: str, items: dict[str, list[Degraded]], methods: dict, scratch: Path,
            save: Path | None) -> dict:
    """Every method on every item of one image set: {task: {method: summary}}."""
    results: dict[str, dict] = {}
    for task, task_items in items.items():
        input_psnr = {item.name: psnr(item.clean, upsampled_observation(item)) for item in task_items}
        results[task] = {}
        for name, method in methods.items():
            if not method.applies_to(task):
                continue
            records = []
            for index, item in enumerate(task_items, 1):
                target = None if save is None else save / label / name / task
                record = restore_and_score(method, item, scratch / label / name / task, target)
                records.append(record)
                status = record.get("error") or f"{record['psnr']:.2f} dB {record['seconds']:.1f} s"
                print(f"[{label} {task} {index}/{len(task_items)} {item.name}] {name}: {status}",
                      file=sys.stderr, flush=True)
            results[task][name] = summarise(records, input_psnr)
    return results


def tune_tv(methods: dict, items: dict[str, list[Degraded]]) -> dict:
    """Tune TV's weight per task on the set's first photo; returns seconds spent per task."""
    spent = {}
    if "tv" in methods:
        for task, task_items in items.items():
            start = time.perf_counter()
            weight = methods["tv"].tune(task_items[0])
            spent[task] = round(time.perf_counter() - start, 2)
            print(f"[tune] tv {task}: weight {weight} on {task_items[0].name} ({spent[task]} s)",
                  file=sys.stderr, flush=True)
    return spent


def flowrt_overhead(methods: dict, items: dict[str, list[Degraded]], scratch: Path) -> float | None:
    """Seconds of a zero-iteration flowrt restore of the first item (start-up + I/O), or None."""
    if "flowrt" not in methods:
        return None
    first = next(iter(items.values()))[0]
    try:
        seconds = methods["flowrt"].overhead_seconds(first, scratch)
    except Exception as exc:  # noqa: BLE001 - informative only; the real runs report failures
        print(f"[overhead] flowrt: {exc}", file=sys.stderr, flush=True)
        return None
    print(f"[overhead] flowrt --iters 0 on {first.name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return round(seconds, 2)


def environment() -> dict:
    import PIL
    import torch

    info = {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "processor": platform.processor()}
    for module in ("skimage", "bm3d", "scipy"):
        try:
            info[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            info[module] = None
    return info


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def measure(args: argparse.Namespace, photos: list[Path], methods: dict, scratch: Path) -> dict:
    """Degrade, tune, restore and score both image sets; the report's measured part."""
    data_root = args.save_images or scratch
    main_items = degrade_set(photos, args.tasks, args.crop, data_root / "main" / "degraded")
    tuning = tune_tv(methods, main_items)
    overhead = flowrt_overhead(methods, main_items, scratch)
    size = "x".join(map(str, main_items[args.tasks[0]][0].clean.shape[1::-1]))
    title = (f"{'Centre crops' if args.crop else 'Full photos'}: {_plural(len(photos), 'photo')} "
             f"of {args.data.name} ({size} for the first)")
    main_methods = {n: m for n, m in methods.items() if n not in args.crops_only}
    sets = [{"label": "main", "title": title, "images": [p.name for p in photos], "crop": args.crop,
             "results": run_set("main", main_items, main_methods, scratch, args.save_images)}]
    if args.dip_photos > 0 and any(n in methods for n in args.crops_only):
        crop_photos = list_photos(args.data, args.dip_photos)
        crop_items = degrade_set(crop_photos, args.tasks, args.dip_crop,
                                 data_root / "dip" / "degraded")
        title = (f"Crop set: {args.dip_crop}x{args.dip_crop} centre crops of "
                 f"{_plural(len(crop_photos), 'photo')}, every method (Deep Image Prior "
                 f"included) on the same pixels")
        sets.append({"label": "dip", "title": title, "images": [p.name for p in crop_photos],
                     "crop": args.dip_crop,
                     "results": run_set("dip", crop_items, methods, scratch, args.save_images)})
    return {"sets": sets, "tv_tuning_seconds": tuning, "flowrt_overhead_seconds": overhead}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"error: --data {args.data} is not a folder")
    photos = list_photos(args.data, args.limit)
    if not photos:
        raise SystemExit(f"error: no photos ({', '.join(PHOTO_SUFFIXES)}) in {args.data}")
    import torch
    torch.set_num_threads(args.threads)
    methods = build_methods(args)
    with tempfile.TemporaryDirectory(prefix="flowrt-quality-") as scratch:
        measured = measure(args, photos, methods, Path(scratch))
    arguments = sys.argv[1:] if argv is None else argv
    report = {"command": "python benchmarks/quality.py " + shlex.join(arguments),
              **measured, "crops_only": args.crops_only,
              "methods": {name: method.describe() for name, method in methods.items()},
              "protocol": {"summary": PROTOCOL_SUMMARY,
                           "tasks": {t: vars(TASKS[t]) for t in args.tasks}},
              "environment": environment()}
    report = rounded(report)
    write_atomic(args.out / "quality.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
    write_atomic(args.out / "quality.md", render_markdown(report))
    failed = sum(summary["failed"] for image_set in report["sets"]
                 for task in image_set["results"].values() for summary in task.values())
    print(f"wrote {args.out / 'quality.json'} and {args.out / 'quality.md'}"
          + (f"; {failed} restorations failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
