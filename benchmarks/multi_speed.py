"""Seconds for one multi restore (x1/2, noise 8, JPEG quality 50; a 256x256 JPEG restored to
512x512), side by side in one invocation: flowrt's defaults (the splitting start, ``--start
auto``), the previous default start (``--start denoise``), and BM3D as the quality peer runs it
(Pillow-bicubic x2, then ``bm3d`` at sigma 20).

    python benchmarks/multi_speed.py --data ../shared/data/val-photos --photo jxl_flower.png --repeats 2

Each run a fresh process (start-up, model load and I/O included), both cores unless --threads
says otherwise; the runs take turns (--repeats rounds) and the median is reported with each
output's PSNR against the clean crop. Writes OUT/multi_speed.{json,md} (--out, default benchmarks/results).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import TASKS, degrade, load_photo, seed_for  # noqa: E402
from restore_speed import take_turns, time_bm3d, time_flowrt  # noqa: E402

TASK_FLAGS = ("--scale", "2", "--sigma", "8")
METHODS = {  # name -> flowrt flags, or None for BM3D
    "flowrt defaults (split start)": [],
    "flowrt --start denoise (the previous default)": ["--start", "denoise"],
    "BM3D (bicubic x2, sigma 20)": None,
}


def measure(args) -> dict:
    task = TASKS["multi"]
    clean = load_photo(args.data / args.photo, 512)
    reference, encoded = degrade(clean, task, seed_for(task.name, args.photo))

    def runner(flags):
        if flags is None:
            return lambda src, out: time_bm3d(src, out, args.threads, sigma_255=20.0, scale=2)
        return lambda src, out: time_flowrt(src, out, flags, args.threads, TASK_FLAGS)
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows = take_turns(encoded, ".jpg", {name: runner(flags) for name, flags in METHODS.items()}, args.repeats,
                      reference)
    return {"photo": args.photo, "output_size": list(reference.shape[:2]), "rows": rows,
            "threads": args.threads or f"unset ({os.cpu_count()} cores)", "repeats": args.repeats,
            "load_average_before": load_before, "load_average": [round(v, 2) for v in os.getloadavg()]}


def write_report(out: Path, report: dict, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "multi_speed.json").write_text(json.dumps(report, indent=2))
    bm3d = report["rows"][-1]["median_s"]
    table = "".join(f"| {r['method']} | {r['median_s']} | {round(r['median_s'] / bm3d, 2)} | {r['psnr_db']} |\n"
                    for r in report["rows"])
    (out / "multi_speed.md").write_text(
        "# One multi restore to 512x512, side by side (this CPU)\n\n"
        f"The 512x512 centre crop of `{report['photo']}`, halved (Pillow bicubic), N(0, 8^2), JPEG quality 50; "
        f"each run a fresh process; OMP_NUM_THREADS {report['threads']}; median of {report['repeats']} round(s), "
        f"the methods taking turns; load average before {report['load_average_before']}, "
        f"at the end {report['load_average']}.\n\n"
        "| method | wall (s) | / BM3D | PSNR (dB) |\n| --- | --- | --- | --- |\n" + table
        + f"\nCommand: `{command}`\n")


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/val-photos"))
    ap.add_argument("--photo", default="jxl_flower.png")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of every run (default: unset)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    report = measure(args)
    command = "python benchmarks/multi_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_report(args.out, report, command.strip())
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
