"""One per-photo PSNR table from several ``benchmarks/quality.py`` runs, so that a regression on one
kind of photo shows (issue 12: every task, every photo).

    python benchmarks/per_photo_table.py RUN_DIR [RUN_DIR ...] --out FILE.md

Each RUN_DIR holds a quality.json. Rows: photo x task; columns: every method's PSNR, flowrt minus
the best peer (the best of the methods other than input and flowrt), and a mark where flowrt
came out below its own input.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

METHODS = ("input", "tv", "bm3d", "jpegqs", "dip", "flowrt")


def rows_of(run: Path):
    """(set title, task, photo, {method: psnr}) for every photo of every task in one run."""
    data = json.loads((run / "quality.json").read_text())
    for s in data["sets"]:
        for task, by_method in s["results"].items():
            table = {}
            for method, summary in by_method.items():
                for rec in summary.get("per_image", []):
                    if "psnr" in rec:
                        table.setdefault(rec["image"], {})[method] = rec["psnr"]
            for photo in s["images"]:
                yield run.name, task, photo, table.get(photo, {})


def render(runs) -> str:
    rows = [r for run in runs for r in rows_of(run)]
    present = [m for m in METHODS if any(m in r[3] for r in rows)]
    head = "| run | task | photo | " + " | ".join(present) + " | flowrt - best peer |\n"
    head += "| --- " * (len(present) + 4) + "|\n"
    body, below = [], 0
    for run, task, photo, psnr in rows:
        peers = [v for m, v in psnr.items() if m not in ("input", "flowrt")]
        cells = []
        for m in present:
            v = psnr.get(m)
            mark = " (below input)" if m == "flowrt" and v is not None and "input" in psnr and v < psnr["input"] else ""
            below += bool(mark)
            cells.append("-" if v is None else f"{v:.2f}{mark}")
        gap = psnr.get("flowrt", float("nan")) - max(peers) if peers and "flowrt" in psnr else float("nan")
        body.append(f"| {run} | {task} | {photo} | " + " | ".join(cells) + f" | {gap:+.2f} |")
    foot = f"\nflowrt outputs below their own input: {below} of {sum('flowrt' in r[3] for r in rows)}.\n"
    return head + "\n".join(body) + "\n" + foot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    text = "# PSNR per photo (dB)\n\n" + f"`python benchmarks/per_photo_table.py {' '.join(map(str, args.runs))} --out {args.out}`\n\n"
    args.out.write_text(text + render(args.runs))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
