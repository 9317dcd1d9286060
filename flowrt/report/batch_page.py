"""The page ``flowrt batch --report`` writes: every restored image of a batch, from the batch's summary.

Data flows one way: ``flowrt.pipeline.batch.run_batch`` returns a ``BatchSummary`` whose records say
what was restored, how and in how long; this module reads those files back and lays them out.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from flowrt.errors import FlowrtError
from flowrt.report.items import load_item, score_note
from flowrt.report.page import render_page, write_page
from flowrt.report.preview import PREVIEW_SIDE


SKIPPED_PLAN = "skipped: its output existed already (--skip-existing); shown as an earlier run left it"


def settings_rows(opts, model_dir: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """(label, text) rows for what every image of the batch shares: the options asked for and the
    prior. What ran on each image (its start, denoiser, iterations, engine) is its record's plan."""
    solver = opts.solver
    from flowrt.numeric.degradations import REGISTRY
    given = "".join(f", {name} {getattr(opts, name)}" for name in REGISTRY if getattr(opts, name) is not None)
    return (("asked", f"sigma {opts.sigma}, jpeg {opts.jpeg}, scale x{opts.scale}" + given
                      + (f", mask {opts.mask}" if opts.mask else "")),
            ("asked of the solver", f"start {solver.start}, "
             + ("iterations by start" if solver.iters is None else f"{solver.iters} flow-MAP iterations")
             + f" in {solver.space} space, lam {solver.lam}, seed {solver.seed}, engine {opts.engine}"),
            ("prior", str(model_dir) if model_dir else "the packaged default prior"))


def write_batch_report(path: Union[str, Path], summary, *, settings: Sequence[Tuple[str, str]] = (),
                       flow=None, input_dir: str = "") -> None:
    """Write the page for ``summary`` (a ``BatchSummary``) atomically. settings: rows shown for every
    image (``settings_rows``); flow: a torch FlowModel for the score maps, or None for none."""
    items, failures = [], [message for _, message in summary.failed]
    entries = [(record.source, record.output, "restored",
                (("plan", record.plan), ("time", f"{record.seconds:.1f} s"), *settings))
               for record in summary.records]
    # --skip-existing: the output of an earlier run is shown as it is; this run did not make it
    entries += [(source, output, "skipped", (("plan", SKIPPED_PLAN), ("time", "skipped")))
                for source, output in summary.skipped]
    for source, output, done, details in entries:
        try:
            items.append(load_item(source.name, str(source), str(output), flow=flow,
                                   details=(*details, ("output", str(output)))))
        except FlowrtError as exc:   # e.g. an output the report cannot decode: listed, the page still made
            failures.append(f"{source.name}: {done}, but not shown ({exc})")
    write_page(path, render_page(items, title=f"flowrt batch: {input_dir or 'report'}",
                                 notes=_notes(summary, flow is not None), failures=failures))


def _notes(summary, with_maps: bool) -> List[str]:
    total = sum(r.seconds for r in summary.records)
    made = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    notes = [f"{summary.line()}; {total:.1f} s restoring; page made {made}",
             f"Drag a slider: left of it the input, right of it the result. Previews larger than "
             f"{PREVIEW_SIDE} px are downscaled; the pages embed every picture and fetch nothing."]
    if with_maps:
        notes.append(score_note())
    return notes
