"""The training curve of a run as a markdown table, from its ``metrics.jsonl``.

    python benchmarks/training_curve.py runs/default --out benchmarks/results/default_prior

writes ``<out>_training.md`` (every validation step: train nll of that batch, val bits/dim) and
copies the raw log to ``<out>_metrics.jsonl``. ``--note`` adds a paragraph under the title (how
the run was made, anything a reader needs to reproduce it).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def read_rows(metrics: Path) -> list[dict]:
    """The log's JSON lines (a line cut short by a crash is skipped)."""
    rows = []
    for line in metrics.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def render(rows: list[dict], title: str, note: str) -> str:
    lines = [f"# {title}", ""]
    if note:
        lines += [note, ""]
    lines += ["| step | train nll (bits/dim, batch) | val bits/dim | lr |", "| --- | --- | --- | --- |"]
    for row in rows:
        if "val_bpd" in row:
            lines.append(f"| {row['step']} | {row['nll_bpd']:.3f} | {row['val_bpd']:.3f} | {row['lr']:.2e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="run folder holding metrics.jsonl")
    ap.add_argument("--out", type=Path, required=True, help="output prefix, e.g. benchmarks/results/default_prior")
    ap.add_argument("--title", default="Training curve of the packaged default prior")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    metrics = args.run / "metrics.jsonl"
    if not metrics.is_file():
        print(f"error: no metrics.jsonl in {args.run}", file=sys.stderr)
        return 2
    rows = read_rows(metrics)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}_training.md").write_text(render(rows, args.title, args.note))
    shutil.copyfile(metrics, f"{args.out}_metrics.jsonl")
    print(f"wrote {args.out}_training.md ({sum('val_bpd' in r for r in rows)} validation points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
