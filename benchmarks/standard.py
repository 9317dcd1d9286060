"""The standard benchmark (issue 22): whole photos of a standard set (kodak24), ten tasks, every
method in the same run.

Tasks (``standard_tasks``): noise15/25/50, jpeg10/20/40, sr2, multi, deblur, inpaint. Methods
(``standard_methods.METHODS``): input (bicubic for sr2), flowrt at its defaults, flowrt
--denoiser grouped, the paper's MAP (--start blur, image and latent space; the first --map-photos
photos only), BM3D where a denoiser applies, jpegqs on JPEG files. Metrics: RGB PSNR over all
pixels, SSIM, PSNR inside the holes for inpainting, seconds per photo.

    python benchmarks/standard.py --out benchmarks/results/standard --map-photos 4

Writes OUT/photos/<stem>.json (one per photo, rewritten after each task: --resume picks up what
is there), OUT/standard.json (every record and the summary) and OUT/standard.md (the tables, with
the published Kodak24 noise figures). A method missing here (jpegqs not installed, a flowrt
without a flag) is skipped and the table says why. A restoration that fails is recorded and the
run goes on; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(_REPO)   # run as a script: import `benchmarks.*` from the repo root
elif str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from benchmarks.metrics import psnr, ssim  # noqa: E402
from benchmarks.peers.base import upsampled_observation  # noqa: E402
from benchmarks.protocol import PHOTO_SUFFIXES, list_photos, load_photo  # noqa: E402
from benchmarks.quality import _split  # noqa: E402 - the one comma-list parser of the benchmarks
from benchmarks.quality_report import rounded, write_atomic  # noqa: E402
from benchmarks.standard_methods import METHODS, SLOW_METHODS  # noqa: E402
from benchmarks.standard_report import render_markdown, summarise  # noqa: E402
from benchmarks.standard_tasks import STANDARD_TASKS, StandardItem, write_standard  # noqa: E402

DEFAULT_DATA = _REPO.parent / "shared" / "data" / "kodak24"
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clean photos")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--tasks", default=",".join(STANDARD_TASKS), help="comma list of " + ",".join(STANDARD_TASKS))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ",".join(METHODS))
    parser.add_argument("--photos", help="N (the first N by name) or a comma list of names or stems")
    parser.add_argument("--map-photos", type=int,
                        help=f"run {', '.join(SLOW_METHODS)} on the first N photos only (default: all)")
    parser.add_argument("--threads", type=int,
                        help="threads for numba / OpenMP / BLAS here and in flowrt's processes (default: as set)")
    parser.add_argument("--save-images", type=Path, help="keep degraded inputs and every output here")
    parser.add_argument("--resume", action="store_true", help="keep the records already in OUT/photos")
    args = parser.parse_args(argv)
    args.tasks = _split(parser, args.tasks, STANDARD_TASKS, "task")
    args.methods = _split(parser, args.methods, METHODS, "method")
    for name in ("map_photos", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def select_photos(folder: Path, selection: str | None) -> list[Path]:
    """The photos of ``folder`` named by --photos: all, the first N, or names / stems; one line on a miss."""
    if not folder.is_dir():
        raise SystemExit(f"error: --data {folder} is not a folder")
    photos = list_photos(folder)
    if not photos:
        raise SystemExit(f"error: no photos ({', '.join(PHOTO_SUFFIXES)}) in {folder}")
    if selection is None:
        return photos
    if selection.strip().isdigit():
        count = int(selection)
        if count < 1:
            raise SystemExit("error: --photos must be at least 1")
        return photos[:count]
    wanted = [n.strip() for n in selection.split(",") if n.strip()]
    by_name = {p.name: p for p in photos} | {p.stem: p for p in photos}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise SystemExit(f"error: no photo {', '.join(missing)} in {folder}")
    return list(dict.fromkeys(by_name[n] for n in wanted))


def build_methods(names: list[str]) -> tuple[dict, dict]:
    """(method name -> Method for those that can run here, name -> why the others cannot)."""
    methods, skipped = {}, {}
    for name in names:
        method = METHODS[name]()
        reason = method.missing()
        if reason:
            skipped[name] = reason
            print(f"[skip] {name}: {reason}", file=sys.stderr, flush=True)
        else:
            methods[name] = method
    return methods, skipped


def score(item: StandardItem, image: np.ndarray) -> dict:
    """PSNR and SSIM of (H, W, 3) uint8 ``image`` against the item's reference, and PSNR inside the holes."""
    metrics = {"psnr": psnr(item.clean, image), "ssim": ssim(item.clean, image)}
    if item.holes is not None:
        metrics["hole_psnr"] = psnr(item.clean[item.holes], image[item.holes])
    return metrics


def restore_and_score(method, item: StandardItem, workdir: Path, save: Path | None) -> dict:
    """One method on one item: its metrics and seconds, or an error (the run goes on)."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        output = np.asarray(method.restore(item, workdir))
    except Exception as exc:  # noqa: BLE001 - one method failing must not lose the whole run
        return {"error": f"{type(exc).__name__}: {exc}"}
    seconds = time.perf_counter() - start
    if output.shape != item.clean.shape:
        return {"error": f"output shape {output.shape} != {item.clean.shape}"}
    if output.dtype != np.uint8:
        if not np.all(np.isfinite(output)):
            return {"error": "NaN or inf in the output"}
        output = np.clip(np.round(output * 255.0), 0, 255).astype(np.uint8)  # what a user saves
    if save is not None:
        from PIL import Image
        save.mkdir(parents=True, exist_ok=True)
        Image.fromarray(output).save(save / (Path(item.name).stem + ".png"))
    return {**score(item, output), "seconds": seconds}


def _earlier_record(path: Path, resume: bool) -> dict:
    if resume and path.is_file():
        return json.loads(path.read_text())
    return {"tasks": {}}


def run_photo(args, index: int, photo: Path, methods: dict, scratch: Path) -> dict:
    """Every task and method on one photo; its record is rewritten to OUT/photos after each task."""
    clean = load_photo(photo)
    target = args.out / "photos" / (photo.stem + ".json")
    record = _earlier_record(target, args.resume) | {"photo": photo.name}
    for task in args.tasks:
        item = write_standard(clean, photo.name, STANDARD_TASKS[task], (args.save_images or scratch) / "degraded")
        entry = record["tasks"].setdefault(task, {"methods": {}})
        entry["input"] = rounded(score(item, upsampled_observation(item)))
        for name, method in methods.items():
            slow = name in SLOW_METHODS and args.map_photos is not None and index >= args.map_photos
            done = entry["methods"].get(name)
            if slow or not method.applies_to(task) or (done is not None and "error" not in done):
                continue
            save = None if args.save_images is None else args.save_images / name / task
            done = rounded(restore_and_score(method, item, scratch / name / task, save))
            entry["methods"][name] = done
            status = done.get("error") or f"{done['psnr']:.2f} dB {done['seconds']:.1f} s"
            print(f"[{photo.name} {task}] {name}: {status}", file=sys.stderr, flush=True)
        write_atomic(target, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def flowrt_overhead(methods: dict, photo: Path, scratch: Path) -> float | None:
    """Seconds of a zero-iteration flowrt restore of the photo's noise25 file (start-up, model
    loading, I/O: the fixed part of every flowrt row's time), or None."""
    method = next((m for n, m in methods.items() if n.startswith("flowrt")), None)
    if method is None:
        return None
    item = write_standard(load_photo(photo), photo.name, STANDARD_TASKS["noise25"], scratch / "overhead")
    try:
        return round(method.overhead_seconds(item, scratch / "overhead"), 2)
    except Exception as exc:  # noqa: BLE001 - informative only
        print(f"[overhead] {exc}", file=sys.stderr, flush=True)
        return None


def environment() -> dict:
    import shutil
    import subprocess

    import PIL
    info = {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "threads": {v: os.environ.get(v) for v in _THREAD_VARIABLES}}
    for module in ("skimage", "bm3d", "scipy"):
        try:
            info[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            info[module] = None
    if shutil.which("dpkg-query"):
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "jpegqs"], capture_output=True, text=True)
        info["jpegqs"] = done.stdout.strip() or None
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    photos = select_photos(args.data, args.photos)
    if args.threads is not None:
        for variable in _THREAD_VARIABLES:   # flowrt's processes read these at start-up
            os.environ[variable] = str(args.threads)
    methods, skipped = build_methods(args.methods)
    with tempfile.TemporaryDirectory(prefix="flowrt-standard-") as scratch:
        records = [run_photo(args, i, photo, methods, Path(scratch)) for i, photo in enumerate(photos)]
        overhead = flowrt_overhead(methods, photos[0], Path(scratch))
    arguments = sys.argv[1:] if argv is None else argv
    report = {"command": "python benchmarks/standard.py " + shlex.join(arguments),
              "data_name": args.data.name, "photos": [p.name for p in photos], "tasks": args.tasks,
              "methods_run": list(methods), "skipped": skipped, "map_photos": args.map_photos,
              "flowrt_overhead_seconds": overhead,
              "summary": summarise(records, args.tasks, list(methods)),
              "methods": {name: method.describe() for name, method in methods.items()},
              "task_specs": {t: vars(STANDARD_TASKS[t]) for t in args.tasks},
              "environment": environment(), "per_photo": records}
    write_atomic(args.out / "standard.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
    write_atomic(args.out / "standard.md", render_markdown(report, records) + "\n")
    failed = sum("error" in m for r in records for t in r["tasks"].values() for m in t["methods"].values())
    print(f"wrote {args.out / 'standard.json'} and {args.out / 'standard.md'}"
          + (f"; {failed} restorations failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
