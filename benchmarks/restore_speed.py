"""Seconds for one 512x512 noise-25 restore, side by side in one invocation: flowrt's old path (torch,
150 Adam iterations from the blurred observation; ``--skip-old`` leaves it out), flowrt's defaults
(the flow denoiser, no MAP), ``--denoiser grouped`` (the grouped denoiser; until 271485d it ran 20
MAP iterations after it, since then noise alone runs none, so the two engine rows time the same work) on each engine, ``--engine torch`` (torch autograd, the torch loop) and
``--engine ort`` (ONNX Runtime's prior gradient under the numpy loop, no torch imported), and BM3D
(the ``bm3d`` package, sigma 25). The engines are named explicitly, whatever ``--engine auto`` picks; the report
gives their ratio, ort seconds / torch seconds (below 1: ort is faster).

    python benchmarks/restore_speed.py --data ../shared/data/val --photo plasma_Kite.png

Degrades the photo's 512x512 centre crop with the noise task (benchmarks/protocol.py) and times the
real CLI in a fresh process per run (start-up, model load and I/O included), with both cores
(OMP_NUM_THREADS unset) unless --threads says otherwise. The runs take turns (--repeats rounds) so
a change in the machine's load hits all of them alike; the median is reported, with the PSNR of
each output against the clean crop. Writes results/restore_speed.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from metrics import psnr  # noqa: E402
from protocol import TASKS, degrade, load_photo, seed_for  # noqa: E402


OLD_PATH = ["--engine", "torch", "--iters", "150", "--start", "blur"]   # flowrt 0.1.0's defaults (150 Adam steps)


_NEUTRAL_CWD = tempfile.gettempdir()


def _env(threads):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def time_flowrt(src: Path, out: Path, extra: list, threads, task_flags: tuple = ("--sigma", "25"),
                python: str = sys.executable) -> float:
    """Seconds for ``flowrt restore SRC -o OUT <task_flags> <extra>`` in a fresh process of ``python``
    (another interpreter runs the flowrt installed there: an earlier checkout, with --before)."""
    t0 = time.perf_counter()
    cmd = [python, "-m", "flowrt.cli.main", "restore", str(src), "-o", str(out), *task_flags, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), cwd=_NEUTRAL_CWD)
    if proc.returncode != 0:
        raise SystemExit(f"flowrt restore failed: {proc.stderr.strip()}")
    return time.perf_counter() - t0


def flowrt_location(python: str) -> str:
    """Where ``python`` imports flowrt from, run as ``time_flowrt`` runs it (from a folder outside any
    checkout: ``python -m`` puts the working folder first on sys.path, so run from the repository
    root every interpreter would import this checkout's flowrt, whatever it has installed)."""
    code = "import flowrt, os; print(os.path.dirname(os.path.dirname(os.path.abspath(flowrt.__file__))))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=_NEUTRAL_CWD, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{python} cannot import flowrt: {proc.stderr.strip()}")
    return proc.stdout.strip()


def time_bm3d(src: Path, out: Path, threads, sigma_255: float = 25.0, scale: int = 1) -> float:
    """BM3D in a fresh process too (its import and I/O counted like flowrt's): the observation,
    Pillow-bicubic enlarged by ``scale`` as the quality peer does, denoised at ``sigma_255``."""
    code = ("import sys, numpy as np; from PIL import Image; from benchmarks.peers.bm3d_peer import denoise_colour;"
            "im = Image.open(sys.argv[1]).convert('RGB'); s = int(sys.argv[3]);"
            "im = im.resize((im.width * s, im.height * s), Image.BICUBIC) if s > 1 else im;"
            "x = np.asarray(im, np.float64) / 255;"
            "y = denoise_colour(x, float(sys.argv[4]) / 255);"
            "Image.fromarray((np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)).save(sys.argv[2])")
    env = _env(threads)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(src), str(out), str(scale), str(sigma_255)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"bm3d failed: {proc.stderr.strip()}")
    return time.perf_counter() - t0


def take_turns(encoded: bytes, suffix: str, runners: dict, repeats: int, reference: np.ndarray) -> list:
    """Time every runner (name -> run(src, out) -> seconds) on the observation ``encoded`` (a file
    with ``suffix``), the runners taking turns for ``repeats`` rounds so a change in the machine's
    load hits all of them alike. Rows in the runners' order: method, median_s, all_s, and the
    PSNR (dB) of its output against ``reference``."""
    seconds = {name: [] for name in runners}
    quality = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"observed{suffix}"
        src.write_bytes(encoded)
        for _ in range(repeats):
            for index, (name, run) in enumerate(runners.items()):
                out = Path(tmp) / f"out{index}.png"
                seconds[name].append(run(src, out))
                quality[name] = round(psnr_of_file(reference, out), 2)
    return [{"method": name, "median_s": round(statistics.median(s), 1), "all_s": [round(v, 1) for v in s],
             "psnr_db": quality[name]} for name, s in seconds.items()]


def psnr_of_file(clean: np.ndarray, path: Path) -> float:
    from PIL import Image
    return psnr(clean, np.asarray(Image.open(path).convert("RGB")))


def write_report(args, report: dict, load_before: list) -> None:
    """results/restore_speed.{json,md} from the report ``main`` measured."""
    rows, ort_over_torch = report["rows"], report["ort_over_torch"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restore_speed.json").write_text(json.dumps(report, indent=2))
    table = "".join(f"| {r['method']} | {r['median_s']} | {r['speedup_vs_first']}x | {r['psnr_db']} |\n" for r in rows)
    (args.out / "restore_speed.md").write_text(
        "# One 512x512 noise-25 restore, side by side (this CPU)\n\n"
        f"512x512 centre crop of `{args.photo}` with N(0, 25^2) noise; each run a fresh process (start-up, "
        f"model load, I/O included); OMP_NUM_THREADS {report['threads']}; median of {args.repeats} round(s), "
        f"the methods taking turns; load average before {load_before}, at the end {report['load_average']}.\n\n"
        f"| method | wall (s) | speed-up vs {rows[0]['method']} | PSNR (dB) |\n| --- | --- | --- | --- |\n" + table
        + f"\nWith --denoiser grouped, --engine ort / --engine torch = {ort_over_torch}; flowrt defaults / BM3D = "
        + f"{report['defaults_over_bm3d']} (wall-clock ratios of the medians).\n"
        + "\nCommand: `python benchmarks/restore_speed.py" + (f" --repeats {args.repeats}" if args.repeats != 1 else "")
        + (" --skip-old" if args.skip_old else "")
        + (f" --threads {args.threads}" if args.threads else "")
        + (f" --before {args.before}" if args.before else "") + "`\n"
        + ("".join(f"\n{name}: after / before = {ratio}" for name, ratio in report["after_over_before"].items())
           + "\n\nflowrt imported from: after {after}, before {before}\n".format(**report["flowrt_imported_from"])
           if args.before else ""))


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/val"))
    ap.add_argument("--photo", default="plasma_Kite.png")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of every run (default: unset, all cores)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--skip-old", action="store_true", help="leave out flowrt 0.1.0's path (the slowest run)")
    ap.add_argument("--before", metavar="PYTHON",
                    help="also time the flowrt rows with this interpreter's flowrt (an earlier checkout installed in "
                         "another venv), taking turns with this one's; the report gives after / before per row")
    args = ap.parse_args(argv)
    if args.before:
        imported_from = {"after": flowrt_location(sys.executable), "before": flowrt_location(args.before)}
        if imported_from["after"] == imported_from["before"]:
            raise SystemExit(f"--before {args.before} imports the same flowrt as this interpreter: "
                             f"{imported_from['after']}")
    task = TASKS["noise"]
    clean = load_photo(args.data / args.photo, 512)
    _, encoded = degrade(clean, task, seed_for(task.name, args.photo))
    grouped = "--denoiser grouped (grouped denoiser alone: noise alone runs no MAP since 271485d)"

    def flowrt_run(extra, python=sys.executable):
        return lambda src, out: time_flowrt(src, out, extra, args.threads, python=python)
    runners = {} if args.skip_old else {"flowrt old path (torch, 150 Adam)": flowrt_run(OLD_PATH)}
    flowrt_rows = {"flowrt defaults (flow denoiser, no MAP)": [],
                   f"{grouped}, --engine torch": ["--denoiser", "grouped", "--engine", "torch"],
                   f"{grouped}, --engine ort": ["--denoiser", "grouped", "--engine", "ort"]}
    for name, extra in flowrt_rows.items():
        runners[name] = flowrt_run(extra)
        if args.before:
            runners[f"{name} [before]"] = flowrt_run(extra, args.before)
    runners["BM3D (sigma 25)"] = lambda src, out: time_bm3d(src, out, args.threads)
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows = take_turns(encoded, ".png", runners, args.repeats, clean)
    by_name = {row["method"]: row for row in rows}
    base = rows[0]["median_s"]
    for row in rows:
        row["speedup_vs_first"] = round(base / row["median_s"], 2)
    seconds = {name: row["median_s"] for name, row in by_name.items()}
    ort_over_torch = round(seconds[f"{grouped}, --engine ort"] / seconds[f"{grouped}, --engine torch"], 3)
    defaults_over_bm3d = round(seconds["flowrt defaults (flow denoiser, no MAP)"] / seconds["BM3D (sigma 25)"], 3)
    report = {"photo": args.photo, "size": [512, 512], "threads": args.threads or f"unset ({os.cpu_count()} cores)",
              "rows": rows, "ort_over_torch": ort_over_torch, "defaults_over_bm3d": defaults_over_bm3d,
              "load_average_before": load_before,
              "load_average": [round(v, 2) for v in os.getloadavg()], "machine": platform.machine()}
    if args.before:
        report["before"] = args.before
        report["flowrt_imported_from"] = imported_from
        report["after_over_before"] = {name: round(seconds[name] / seconds[f"{name} [before]"], 3)
                                       for name in flowrt_rows}
    write_report(args, report, load_before)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
