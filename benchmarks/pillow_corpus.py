"""flowrt's image reader against Pillow's own test images: nothing may crash or hang.

Pillow's ``Tests/images`` holds hundreds of PNG, JPEG and TIFF files, many deliberately odd or
broken (fuzzer finds, truncations, exotic modes). Every such file goes through
``flowrt.io.image_file.read_image`` (and, for JPEGs, the coefficient read) in its own child
process with a timeout, and is counted as ok, refused (an InputError: one line, the reason
kept), crashed (any other exception, or the process died) or hung. The same child also asks
whether Pillow itself reads the file (open + load), so refusals of files Pillow reads stand out.
Writes benchmarks/results/pillow_corpus.json and .md. The corpus is fetched, never committed:

    git --git-dir=<Pillow clone>/.git archive HEAD Tests/images | tar -x -C /tmp/pillow
    OMP_NUM_THREADS=1 python benchmarks/pillow_corpus.py /tmp/pillow/Tests/images [--timeout 30] [--jobs 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
MARK = "@@check "
MEMORY_LIMIT = 4 << 30  # a child that tries to allocate more has crashed, not the machine


# ---------------------------------------------------------------- child: one file


def _pillow_reads(path: str) -> dict:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
        return {"pillow": True}
    except Exception as exc:  # anything Pillow raises means it does not read the file
        return {"pillow": False, "pillow_error": f"{type(exc).__name__}: {str(exc)[:120]}"}


def _flowrt_reads(path: str) -> dict:
    from flowrt.errors import FlowrtError
    from flowrt.io.image_file import read_image

    try:
        image = read_image(path)
        exact = None
        if image.jpeg is not None:  # the likelihood will need them: read them now, as restore would
            image.jpeg.coefficients()
            exact = image.jpeg.exact
        return {"flowrt": "ok", "format": image.format, "size": list(image.size), "bit_depth": image.bit_depth,
                "jpeg_exact": exact}
    except FlowrtError as exc:
        return {"flowrt": "refused", "reason": str(exc), "one_line": "\n" not in str(exc)}


def child(path: str, what: List[str]) -> None:
    """Print one JSON line per check, flushed at once: a later hang or crash keeps the earlier."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # what a CLI user would see
    for check in what:
        os.write(2, f"{MARK}{check}\n".encode())  # the parent blames stderr on the check that wrote it
        result = _pillow_reads(path) if check == "pillow" else _flowrt_reads(path)
        print(json.dumps({"check": check, **result}), flush=True)


# ---------------------------------------------------------------- parent: the corpus


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_child(path: Path, what: List[str], timeout: float) -> dict:
    """{'pillow': ..., 'flowrt': ...} from one child; missing checks say why they are missing."""
    cmd = [sys.executable, __file__, "--one", str(path), "--what", ",".join(what)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="default")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              preexec_fn=_limit_memory, errors="replace")
        out, err, code, hung = proc.stdout, proc.stderr, proc.returncode, False
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        code, hung = None, True
    lines = {}
    for line in out.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            lines[record.pop("check")] = record
    return {"lines": lines, "stderr": err, "code": code, "hung": hung,
            "seconds": round(time.perf_counter() - start, 3)}


def _missing(run: dict) -> dict:
    if run["hung"]:
        return {"status": "hung"}
    tail = [line for line in run["stderr"].splitlines() if line.strip() and not line.startswith(MARK)][-3:]
    return {"status": "crashed", "exit_code": run["code"], "traceback_tail": tail}


def _stray_stderr(stderr: str) -> List[str]:
    """What flowrt's read put on stderr other than its own log lines (raw library output or
    Python warnings a user would see); Pillow's own check, run first, is not counted."""
    after = stderr.split(f"{MARK}flowrt\n", 1)[-1]
    return [line for line in after.splitlines()
            if line.strip() and not line.startswith(("WARNING:flowrt", "INFO:flowrt", "DEBUG:flowrt"))]


def measure(path: Path, timeout: float) -> dict:
    run = _run_child(path, ["pillow", "flowrt"], timeout)
    if "pillow" not in run["lines"]:  # Pillow hung or crashed first: ask flowrt on its own
        pillow = {"pillow": False, "pillow_error": _missing(run)["status"]}
        run = _run_child(path, ["flowrt"], timeout)
    else:
        pillow = run["lines"]["pillow"]
    flowrt = run["lines"].get("flowrt")
    record = {"file": path.name, **pillow, "seconds": run["seconds"]}
    if flowrt is None:
        record.update(_missing(run))
    else:
        record.update(status=flowrt.pop("flowrt"), **flowrt)
        stray = _stray_stderr(run["stderr"])
        if stray:
            record["stray_stderr"] = stray[:3]
    return record


def corpus(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def summarise(records: List[dict]) -> Dict[str, int]:
    counts = Counter(r["status"] for r in records)
    return {"files": len(records), "ok": counts["ok"], "refused": counts["refused"],
            "crashed": counts["crashed"], "hung": counts["hung"],
            "pillow_reads": sum(r["pillow"] for r in records),
            "refused_but_pillow_reads": sum(r["status"] == "refused" and r["pillow"] for r in records),
            "ok_but_pillow_fails": sum(r["status"] == "ok" and not r["pillow"] for r in records),
            "refusals_not_one_line": sum(r["status"] == "refused" and not r["one_line"] for r in records),
            "stray_stderr": sum("stray_stderr" in r for r in records),
            "jpeg_coefficients_estimated": sum(r.get("jpeg_exact") is False for r in records)}


def markdown(summary: Dict[str, int], records: List[dict], meta: dict) -> str:
    out = ["# flowrt's reader on Pillow's test images", "",
           f"{meta['files']} PNG/JPEG/TIFF files from Pillow's `Tests/images` (commit {meta['pillow_commit']}), "
           f"each read in its own process (timeout {meta['timeout_s']} s, {MEMORY_LIMIT >> 30} GiB address space) by "
           "`flowrt.io.image_file.read_image` (plus the JPEG coefficients), and by Pillow (open + load). "
           f"Run {meta['date']} on {meta['machine']}; `benchmarks/pillow_corpus.py`.", "",
           "| outcome | files |", "|---|---:|"]
    out += [f"| {key.replace('_', ' ')} | {value} |" for key, value in summary.items()]
    def rows(title, chosen, column):
        if not chosen:
            return
        out.extend(["", f"## {title}", "", f"| file | Pillow reads | {column} |", "|---|---|---|"])
        for r in chosen:
            detail = (r.get("reason") if column.startswith("flowrt") else r.get("pillow_error")) \
                if column != "what happened" else " / ".join(r.get("traceback_tail", [])) or r["status"]
            out.append(f"| `{r['file']}` | {'yes' if r['pillow'] else 'no'} | {detail.replace('|', '/')[:160]} |")
    rows("Crashed or hung", [r for r in records if r["status"] in ("crashed", "hung")], "what happened")
    rows("Refused although Pillow reads them", [r for r in records if r["status"] == "refused" and r["pillow"]],
         "flowrt's one-line reason")
    rows("Read by flowrt although Pillow fails", [r for r in records if r["status"] == "ok" and not r["pillow"]],
         "Pillow's error")
    return "\n".join(out) + "\n"


def _pillow_commit(folder: Path) -> str:
    marker = folder / "COMMIT"
    return marker.read_text().strip() if marker.exists() else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per file (default 30)")
    parser.add_argument("--jobs", type=int, default=1, help="files read at once (default 1)")
    parser.add_argument("--commit", default=None, help="Pillow commit the corpus came from (for the report)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--what", default="pillow,flowrt", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return child(args.one, args.what.split(","))
    if args.folder is None or not args.folder.is_dir():
        parser.error("give the folder of Pillow's Tests/images")
    files = corpus(args.folder)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        records = list(pool.map(lambda p: {**measure(p, args.timeout), "file": str(p.relative_to(args.folder))},
                                files))
    for record in records:  # messages name the file by its path; the report names it by file
        for key in ("reason", "pillow_error"):
            if key in record:
                record[key] = record[key].replace(f"{args.folder}{os.sep}", "")
    summary = summarise(records)
    meta = {"files": len(files), "timeout_s": args.timeout, "seconds": round(time.perf_counter() - start, 1),
            "pillow_commit": args.commit or _pillow_commit(args.folder), "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pillow_corpus.json").write_text(json.dumps({"meta": meta, "summary": summary, "files": records},
                                                           indent=1) + "\n")
    (RESULTS / "pillow_corpus.md").write_text(markdown(summary, records, meta))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
