"""The standard benchmark's per-photo records turned into its summary and markdown tables.

A photo's record (``photos/<stem>.json``): {"photo", "tasks": {task: {"input": metrics, "methods":
{method: metrics or {"error"}}}}}, metrics = {"psnr", "ssim", "hole_psnr" (inpaint), "seconds"}.
"""
from __future__ import annotations

from typing import Optional

from benchmarks.quality_report import rounded
from benchmarks.standard_methods import REFERENCE_METHOD

# Published colour Gaussian denoising on Kodak24 (RGB PSNR, dB) at noise 15 / 25 / 50: CBM3D and
# FFDNet from Zhang, Zuo, Zhang, "FFDNet" (IEEE TIP 2018); DRUNet from Zhang et al., "Plug-and-Play
# Image Restoration with Deep Denoiser Prior" (DPIR, IEEE TPAMI 2021). Their noise is not clipped.
PUBLISHED_NOISE = {
    "CBM3D": (34.28, 31.68, 28.46),
    "FFDNet": (34.63, 32.13, 28.98),
    "DRUNet": (35.31, 32.89, 29.86),
}
NOISE_TASKS = ("noise15", "noise25", "noise50")
TIME_FALLBACK_TASK = "noise25"   # BM3D's time on this task stands in where BM3D does not apply


def _mean(values: list) -> Optional[float]:
    return float(sum(values) / len(values)) if values else None


def _done(photos: list[dict], task: str, method: str) -> dict[str, dict]:
    """photo name -> method's metrics on task, for the photos it restored without error."""
    out = {}
    for record in photos:
        metrics = record["tasks"].get(task, {}).get("methods", {}).get(method)
        if metrics is not None and "error" not in metrics:
            out[record["photo"]] = metrics
    return out


def _bm3d_seconds(photos: list[dict], task: str) -> tuple[dict[str, float], Optional[str]]:
    """BM3D's seconds per photo on task (or on TIME_FALLBACK_TASK where it does not apply) and the
    task they come from."""
    for source in (task, TIME_FALLBACK_TASK):
        seconds = {p: m["seconds"] for p, m in _done(photos, source, "bm3d").items()}
        if seconds:
            return seconds, source
    return {}, None


def summarise_task(photos: list[dict], task: str, methods: list[str]) -> dict:
    """{"input": the observation's mean metrics, "methods": {method: photos, failed, mean psnr /
    ssim / hole_psnr / seconds, how many came out below their input, the mean PSNR gain over
    REFERENCE_METHOD on the same photos, the ratio of its total time to BM3D's on the same photos}}."""
    reference = _done(photos, task, REFERENCE_METHOD)
    bm3d_seconds, bm3d_source = _bm3d_seconds(photos, task)
    inputs = {r["photo"]: r["tasks"][task]["input"] for r in photos if task in r["tasks"]}
    summary: dict = {}
    for method in methods:
        tried = [r for r in photos if method in r["tasks"].get(task, {}).get("methods", {})]
        if not tried:
            continue
        done = _done(photos, task, method)
        common = [p for p in done if p in reference]
        timed = [p for p in done if p in bm3d_seconds]
        summary[method] = {
            "photos": len(tried), "failed": len(tried) - len(done),
            **{key: _mean([m[key] for m in done.values() if key in m])
               for key in ("psnr", "ssim", "hole_psnr", "seconds")},
            "worse_than_input": sum(m["psnr"] < inputs[p]["psnr"] - 1e-9 for p, m in done.items()),
            "gain_over_reference": _mean([done[p]["psnr"] - reference[p]["psnr"] for p in common]),
            "time_over_bm3d": (sum(done[p]["seconds"] for p in timed) / sum(bm3d_seconds[p] for p in timed)
                               if timed else None),
            "bm3d_time_from": bm3d_source if timed else None,
        }
    observed = {key: _mean([m[key] for m in inputs.values() if key in m]) for key in ("psnr", "ssim", "hole_psnr")}
    return rounded({"input": observed | {"photos": len(inputs)}, "methods": summary})


def summarise(photos: list[dict], tasks: list[str], methods: list[str]) -> dict:
    return {task: summarise_task(photos, task, methods) for task in tasks}


def _num(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


def overview_table(summary: dict, tasks: list[str], methods: list[str], n_photos: int) -> list[str]:
    """Rows = the input and the methods, columns = tasks: 'PSNR / SSIM (s)' means, a row run on
    fewer photos marked."""
    lines = ["| method | " + " | ".join(tasks) + " |", "| --- |" + " --- |" * len(tasks)]
    inputs = [summary[t]["input"] for t in tasks]
    lines.append("| input | " + " | ".join(f"{r['psnr']:.2f} / {r['ssim']:.3f}" for r in inputs) + " |")
    for method in [m for m in methods if any(m in summary[t]["methods"] for t in tasks)]:
        cells = []
        for task in tasks:
            row = summary[task]["methods"].get(method)
            if row is None or row.get("psnr") is None:
                cells.append("-" if row is None else "failed")
                continue
            cell = f"{row['psnr']:.2f} / {row['ssim']:.3f} ({_seconds(row['seconds'])} s)"
            if row["photos"] < n_photos:
                cell += f" [{row['photos']} photo{'s' * (row['photos'] != 1)}]"
            cells.append(cell)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def anchors_table(summary: dict, methods: list[str]) -> list[str]:
    """Published Kodak24 noise figures beside this run's means (clipped 8-bit noise here)."""
    lines = ["| method | noise 15 | noise 25 | noise 50 | source |", "| --- | --- | --- | --- | --- |"]
    for name, figures in PUBLISHED_NOISE.items():
        source = "DPIR (TPAMI 2021)" if name == "DRUNet" else "FFDNet (TIP 2018)"
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in figures) + f" | {source}, unclipped noise |")
    for method in methods:
        cells = [summary.get(t, {"methods": {}})["methods"].get(method) for t in NOISE_TASKS]
        if any(c is not None for c in cells):
            lines.append(f"| {method} | " + " | ".join(_num(None if c is None else c["psnr"]) for c in cells)
                         + " | this run, clipped 8-bit noise |")
    return lines


def task_table(task_summary: dict, task: str) -> list[str]:
    """One task in detail: a row per method, then the input's figures."""
    holes = task == "inpaint"
    head = "| method | photos | PSNR | SSIM |" + (" PSNR in holes |" if holes else "") + \
        f" s/photo | x BM3D time | vs {REFERENCE_METHOD} (same photos) | below input |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for method, row in task_summary["methods"].items():
        cells = [method, f"{row['photos']}" + (f" ({row['failed']} failed)" if row["failed"] else ""),
                 _num(row["psnr"]), _num(row["ssim"], 4)]
        if holes:
            cells.append(_num(row["hole_psnr"]))
        ratio = row["time_over_bm3d"]
        ratio_text = "-" if ratio is None else f"{ratio:.2f}" + \
            ("" if row["bm3d_time_from"] == task else f" (of {row['bm3d_time_from']})")
        gain = row["gain_over_reference"]
        gain_text = "(the reference)" if method == REFERENCE_METHOD else ("-" if gain is None else f"{gain:+.2f}")
        cells += [_seconds(row["seconds"]), ratio_text, gain_text,
                  str(row["worse_than_input"])]
        lines.append("| " + " | ".join(cells) + " |")
    inp = task_summary["input"]
    lines.append(f"\nInput: {_num(inp['psnr'])} dB, SSIM {_num(inp['ssim'], 4)}"
                 + (f", {_num(inp['hole_psnr'])} dB in the holes" if holes else "") + ".")
    return lines


def per_photo_table(photos: list[dict], task: str, methods: list[str]) -> list[str]:
    """PSNR per photo (rows) and method (columns) on ``task``."""
    shown = [m for m in methods if any(m in r["tasks"].get(task, {}).get("methods", {}) for r in photos)]
    lines = ["| photo | input | " + " | ".join(shown) + " |",
             "| --- | --- |" + " --- |" * len(shown)]
    for record in photos:
        entry = record["tasks"].get(task)
        if entry is None:
            continue
        cells = []
        for method in shown:
            metrics = entry["methods"].get(method)
            cells.append("-" if metrics is None else ("failed" if "error" in metrics else f"{metrics['psnr']:.2f}"))
        lines.append(f"| {record['photo']} | {entry['input']['psnr']:.2f} | " + " | ".join(cells) + " |")
    return lines


def _overhead(seconds: Optional[float]) -> str:
    return "" if seconds is None else f" (a zero-iteration restore of the first photo took {seconds:.1f} s)"


def render_markdown(report: dict, photos: list[dict]) -> str:
    tasks, methods = report["tasks"], report["methods_run"]
    n = len(report["photos"])
    out = [f"# Standard benchmark: {n} whole photo{'s' * (n != 1)} of {report['data_name']}", "",
           f"Command: `{report['command']}`", "",
           "Cells: mean RGB PSNR (dB, all pixels) / SSIM (skimage, 7x7 window), seconds per photo. "
           "flowrt rows run its CLI in a fresh process per photo, so their seconds include start-up and "
           "model loading" + _overhead(report.get("flowrt_overhead_seconds")) + ". x BM3D time: the row's "
           "total time over BM3D's on the same photos and task (where BM3D does not apply, its time on "
           f"{TIME_FALLBACK_TASK}). Outputs are rounded to 8 bits before scoring. Tasks, degradations and "
           "flowrt's flags: `benchmarks/standard_tasks.py`; rows: `benchmarks/standard_methods.py`.", ""]
    if report["skipped"]:
        out += ["Skipped methods: " + "; ".join(f"{m}: {why}" for m, why in report["skipped"].items()), ""]
    out += overview_table(report["summary"], tasks, methods, n) + [""]
    if any(t in tasks for t in NOISE_TASKS):
        out += ["## Noise against the published figures on Kodak24", "",
                "CBM3D and FFDNet from the FFDNet paper (TIP 2018), DRUNet from DPIR (TPAMI 2021). Their "
                "noise is Gaussian and unclipped; here it is rounded and clipped to 8 bits, which removes a "
                "little of it at the extremes, so the figures compare only roughly.", ""]
        out += anchors_table(report["summary"], methods) + [""]
    for task in tasks:
        out += [f"## {task}", ""] + task_table(report["summary"][task], task) + [""]
    out += ["## Per photo (PSNR, dB)", ""]
    for task in tasks:
        out += [f"### {task}", ""] + per_photo_table(photos, task, methods) + [""]
    return "\n".join(out)
