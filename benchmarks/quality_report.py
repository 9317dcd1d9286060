"""Turning the quality benchmark's per-image records into its JSON summary and markdown tables."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

METHOD_ORDER = ("input", "tv", "bm3d", "jpegqs", "dip", "flowrt")
TASK_ORDER = ("noise", "jpeg", "multi")


def _mean(values: list[float]) -> float | None:
    return None if not values else float(sum(values) / len(values))


def summarise(records: list[dict], input_psnr: dict[str, float]) -> dict:
    """Means over the images a method restored, plus how many failed and how many came out
    below their own degraded input's PSNR (input_psnr: image name -> dB).

    records: one dict per image: {"image", "psnr", "ssim", "ms_ssim", "seconds"} or
    {"image", "error"}.
    """
    done = [r for r in records if "error" not in r]
    summary = {
        "images": len(records),
        "failed": len(records) - len(done),
        "psnr": _mean([r["psnr"] for r in done]),
        "ssim": _mean([r["ssim"] for r in done]),
        "ms_ssim": _mean([r["ms_ssim"] for r in done]),
        "seconds": _mean([r["seconds"] for r in done]),
        "worse_than_input": sum(r["psnr"] < input_psnr[r["image"]] - 1e-9 for r in done),
        "per_image": records,
    }
    return rounded(summary)


def rounded(value, digits: int = 4):
    """Round floats (recursively) so the JSON is stable and readable; seconds keep 3 digits."""
    if isinstance(value, float):
        return value if not math.isfinite(value) else round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, 3 if k == "seconds" else digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


def _cell(summary: dict | None, best_psnr: float | None) -> str:
    if summary is None:
        return "-"
    if summary["psnr"] is None:
        return f"failed ({summary['failed']}/{summary['images']})"
    text = f"{summary['psnr']:.2f}"
    if best_psnr is not None and summary["psnr"] >= best_psnr:
        text = f"**{text}**"
    text += f" / {summary['ssim']:.3f} / {summary['ms_ssim']:.3f} / {_seconds(summary['seconds'])}"
    if summary["failed"]:
        text += f" ({summary['failed']} failed)"
    return text


def markdown_table(image_set: dict) -> list[str]:
    """Rows = methods, columns = tasks; cells 'PSNR / SSIM / MS-SSIM / seconds per image', the
    best PSNR of each task in bold, '-' where a method does not apply."""
    results = image_set["results"]
    tasks = [t for t in TASK_ORDER if t in results]
    methods = [m for m in METHOD_ORDER if any(m in results[t] for t in tasks)]
    best = {t: max((s["psnr"] for s in results[t].values() if s["psnr"] is not None),
                   default=None) for t in tasks}
    lines = ["| method | " + " | ".join(tasks) + " |", "| --- |" + " --- |" * len(tasks)]
    for method in methods:
        cells = [_cell(results[t].get(method), best[t]) for t in tasks]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: dict) -> str:
    """The whole quality.md: one section per image set, then the settings that matter."""
    lines = ["# Restoration quality on the val photos", "",
             "Cells: PSNR (dB) / SSIM / MS-SSIM / seconds per image (mean over images); "
             "best PSNR per task in bold; `-` = method does not apply.", "",
             f"Regenerate: `{report['command']}`", ""]
    for image_set in report["sets"]:
        lines += [f"## {image_set['title']}", "", *markdown_table(image_set), ""]
        if image_set["label"] == "main" and report.get("crops_only"):
            lines += [f"Run on the crop set only: {', '.join(report['crops_only'])}.", ""]
    lines += ["## Settings", ""]
    for name, description in report["methods"].items():
        details = ", ".join(f"{k}={v}" for k, v in description.items() if k != "what")
        lines.append(f"- **{name}**: {description['what']}" + (f" ({details})" if details else ""))
    if report.get("flowrt_overhead_seconds") is not None:
        lines.append(f"- flowrt's seconds include process start-up and model loading: a "
                     f"zero-iteration restore took {report['flowrt_overhead_seconds']:.1f} s.")
    lines += ["", "Protocol: " + report["protocol"]["summary"], ""]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
