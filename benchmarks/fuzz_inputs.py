"""Fuzz flowrt's load -> plan -> restore -> write path with seeded mutations of small valid inputs.

Seeds (``fuzz_mutations.py``, a few hundred bytes to a few KB each): PNG 8-bit RGB, 16-bit RGB, grey+alpha and
palette; JPEG baseline 4:2:0 and progressive; TIFF striped, tiled, deflate, LZW and PackBits; and an
exported tiny model folder. Mutations (``mutate``): bit flips, byte overwrites with extreme values,
truncation, chunk/marker-segment/IFD-entry shuffles and drops, header fields set to edge values
(width, height, bit depth, colour type, TIFF tag values, JPEG frame sizes), spliced and duplicated
ranges. Every case runs in this process: ``prepare_restore`` (load and plan) then ``run_restore``
with one MAP iteration into a fresh folder (TIFF inputs to TIFF in 16-pixel tiles, the streamed
route, for half the cases); a model case loads the mutated folder and restores a small valid image.

A case passes when it ends in success (the output exists and decodes) or in a ``FlowrtError`` of
one line with nothing written, and within its time limit. Anything else is a failure: an exception
of another type (a traceback for a user), a hang, a partial output or a stray file.

  python benchmarks/fuzz_inputs.py --cases 5000 --seed 0 --out benchmarks/results

writes ``results/fuzz_inputs.json`` (every case's kind, mutation and outcome) and
``results/fuzz_inputs.md`` (counts per seed file and outcome). Cases run in forked workers so that
a hang in native code is caught (the worker is killed, the case counted as a hang, the run goes on).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fuzz_mutations import make_seed_images, mutate, mutate_model  # noqa: E402

PIXEL_LIMIT = 1 << 20          # the fuzz's decompression-bomb limit: mutated sizes stay cheap
CASE_SECONDS = 30              # a case running longer is a hang


# ---------------------------------------------------------------- running one case


@dataclass
class Outcome:
    case: int
    seed_file: str
    mutation: str
    route: str
    result: str              # success | user-error | traceback | hang | partial-output | stray-file | multi-line
    detail: str = ""
    seconds: float = 0.0


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _restore(src: Path, out: Path, model_dir, tile: Optional[int], prior=None) -> None:
    from flowrt.pipeline.plan import RestoreOptions
    from flowrt.pipeline.run import TilingOptions, model_key, prepare_restore, run_restore
    from flowrt.prior.engines import load_prior
    from flowrt.solve.solver import SolverConfig
    opts = RestoreOptions(solver=SolverConfig(iters=1))
    tiling = TilingOptions(tile=tile, overlap=4)
    job = prepare_restore(str(src), str(out), opts, tiling)
    with job.source:  # closed by run_restore too; here also when loading the prior fails
        if prior is None:
            prior = load_prior(model_dir, "torch")
        run_restore(job, prior, opts, model=model_key(model_dir) if model_dir else "fuzz")


@dataclass
class _Case:
    seed_file: str
    mutation: str
    route: str
    src: Path
    out: Path
    model: Path
    tile: Optional[int]
    prior: object


def _make_case(case: int, folder: Path, seeds: Dict[str, bytes], model_dir: Path, prior) -> _Case:
    """Write case ``case``'s mutated input (or model folder) under ``folder``; seeded by ``case``."""
    rng = random.Random(case)
    names = sorted(seeds) + ["model"]
    seed_file = names[case % len(names)]
    if seed_file == "model":
        model = folder / "model"
        shutil.copytree(model_dir, model)
        mutation = mutate_model(model, rng)
        src = folder / "in.png"
        src.write_bytes(seeds["rgb8.png"])
        return _Case(seed_file, mutation, "model", src, folder / "out" / "out.png", model, None, None)
    kind = seed_file.rsplit(".", 1)[1]
    data, mutation = mutate(seeds[seed_file], kind, rng)
    src = folder / f"in.{kind}"
    src.write_bytes(data)
    streamed = kind == "tif" and rng.random() < 0.5
    route = "tiff-tiled" if streamed else ("tiled" if rng.random() < 0.2 else "whole")
    out = folder / "out" / ("out.tif" if kind == "tif" else "out.png")
    return _Case(seed_file, mutation, route, src, out, model_dir, 16 if route != "whole" else 0, prior)


def _attempt(c: _Case, seconds: float) -> tuple:
    """(result, detail) of restoring the case under a SIGALRM time limit."""
    from flowrt.errors import FlowrtError
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        _restore(c.src, c.out, c.model, c.tile, c.prior)
        return "success", ""
    except _Timeout:
        return "hang", f"over {seconds} s"
    except FlowrtError as exc:
        message = str(exc)
        one_line = message and "\n" not in message and len(message) < 600
        return ("user-error" if one_line else "multi-line"), message[:300]
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzz looks for
        import traceback
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
        return "traceback", detail + " | " + traceback.format_exc().splitlines()[-3].strip()[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_files(folder: Path, out: Path, result: str, detail: str) -> tuple:
    """Downgrade (result, detail) for what the run left: the output alone and whole on success,
    nothing after an error, no temporary file anywhere."""
    from flowrt.errors import FlowrtError
    from flowrt.io.image_file import read_image
    left = sorted(p.name for p in out.parent.iterdir())
    if result == "success":
        if left != [out.name]:
            return "stray-file", f"left {left}"
        try:
            read_image(out)
        except FlowrtError as exc:
            return "partial-output", str(exc)[:300]
    elif result in ("user-error", "multi-line") and left:
        return "partial-output", f"left {left} after: {detail}"
    strays = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    if strays and result in ("success", "user-error"):
        return "stray-file", f"left {strays}"
    return result, detail


def run_case(case: int, work: Path, seeds: Dict[str, bytes], model_dir: Path, prior,
             seconds: float = CASE_SECONDS) -> Outcome:
    """Case number ``case`` (its own seeded rng): mutate, restore, classify. Never raises."""
    folder = work / f"case{case}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "out").mkdir(parents=True)
    c = _make_case(case, folder, seeds, model_dir, prior)
    t0 = time.perf_counter()
    result, detail = _attempt(c, seconds)
    elapsed = time.perf_counter() - t0
    result, detail = _check_files(folder, c.out, result, detail)
    shutil.rmtree(folder, ignore_errors=True)
    return Outcome(case, c.seed_file, c.mutation, c.route, result, detail, round(elapsed, 3))


def setup(work: Path):
    """(seed images, model folder, loaded prior) for running cases under ``work``; sets the fuzz's
    pixel limit and keeps torch on one thread."""
    import logging

    import torch
    from PIL import Image
    torch.set_num_threads(1)
    Image.MAX_IMAGE_PIXELS = PIXEL_LIMIT
    logging.getLogger("flowrt").setLevel(logging.ERROR)  # damaged metadata warns on every case
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import write_tiny_checkpoint
    from flowrt.export.pipeline import export_checkpoint
    from flowrt.prior.engines import load_prior
    model_dir = work / "prior"
    if not (model_dir / "manifest.yaml").exists():
        export_checkpoint(write_tiny_checkpoint(work / "tiny.pt"), model_dir)
    return make_seed_images(), model_dir, load_prior(model_dir, "torch")


# ---------------------------------------------------------------- the long run


def _worker(cases: List[int], work: Path, seeds, model_dir, prior, write_fd: int) -> None:
    for case in cases:
        os.write(write_fd, (json.dumps({"start": case}) + "\n").encode())
        outcome = run_case(case, work, seeds, model_dir, prior)
        os.write(write_fd, (json.dumps(asdict(outcome)) + "\n").encode())


def run_forked(cases: List[int], work: Path, seeds, model_dir, prior, hang_seconds: float) -> List[Outcome]:
    """Run ``cases`` in forked workers; a worker silent for ``hang_seconds`` is killed, its case is a hang."""
    outcomes: List[Outcome] = []
    pending = list(cases)
    while pending:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            code = 70
            try:
                os.close(read_fd)
                _worker(pending, work, seeds, model_dir, prior, write_fd)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        buffer, current = b"", None
        while True:
            ready, _, _ = select.select([read_fd], [], [], hang_seconds)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                row = json.loads(line)
                if "start" in row:
                    current = row["start"]
                else:
                    outcomes.append(Outcome(**row))
                    pending.remove(row["case"])
                    current = None
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if current is not None:  # the worker died or hung inside a case
            why = "hang" if not os.WIFEXITED(status) and os.WTERMSIG(status) == signal.SIGKILL else "traceback"
            names = sorted(seeds) + ["model"]
            outcomes.append(Outcome(current, names[current % len(names)], "?", "?", why,
                                    f"worker ended with status {status}"))
            pending.remove(current)
        elif pending and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            break
    return sorted(outcomes, key=lambda o: o.case)


def write_results(outcomes: List[Outcome], out_dir: Path, command: str, seconds: float) -> None:
    results = ("success", "user-error", "traceback", "hang", "partial-output", "stray-file", "multi-line")
    table: Dict[str, Dict[str, int]] = {}
    for o in outcomes:
        table.setdefault(o.seed_file, {r: 0 for r in results})[o.result] += 1
    totals = {r: sum(row[r] for row in table.values()) for r in results}
    bad = [asdict(o) for o in outcomes if o.result not in ("success", "user-error")]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fuzz_inputs.json").write_text(json.dumps(
        {"command": command, "cases": len(outcomes), "seconds": round(seconds, 1), "pixel_limit": PIXEL_LIMIT,
         "totals": totals, "per_seed": table, "failures": bad,
         "cases_detail": [asdict(o) for o in outcomes]}, indent=1))
    lines = [f"# fuzz_inputs: {len(outcomes)} mutated inputs", "",
             f"`{command}` ({seconds / 60:.1f} min, one core). Pass = success or a one-line flowrt error "
             "with nothing written.", "",
             "| seed file | " + " | ".join(results) + " |", "| --- |" + " ---: |" * len(results)]
    for name in sorted(table):
        lines.append(f"| {name} | " + " | ".join(str(table[name][r]) for r in results) + " |")
    lines.append("| **total** | " + " | ".join(f"**{totals[r]}**" for r in results) + " |")
    if bad:
        lines += ["", "## failures", ""] + [f"- case {b['case']} {b['seed_file']} ({b['mutation']}): "
                                            f"{b['result']}: {b['detail']}" for b in bad[:50]]
    (out_dir / "fuzz_inputs.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--first", type=int, default=0, help="first case number (cases are seeded by it)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--hang-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    command = "python benchmarks/fuzz_inputs.py " + " ".join(sys.argv[1:] if argv is None else argv)
    work = Path(tempfile.mkdtemp(prefix="flowrt-fuzz-"))
    try:
        seeds, model_dir, prior = setup(work)
        t0 = time.perf_counter()
        outcomes = run_forked(list(range(args.first, args.first + args.cases)), work, seeds, model_dir, prior,
                              args.hang_seconds)
        write_results(outcomes, Path(args.out), command, time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bad = sum(o.result not in ("success", "user-error") for o in outcomes)
    print(f"{len(outcomes)} cases, {bad} failures; see {args.out}/fuzz_inputs.md")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
