"""Progress a person can read, on stderr: tqdm bars with their total from the first frame, an ETA
and a final line left on screen when stderr is a terminal; plain lines (or nothing) when it is not.

The runtime reports progress through plain callbacks (``on_step(stage, done, total)`` per step of
each phase of ``RestorationPlan.stages``, ``on_tile(done, total)``,
``flowrt.pipeline.batch.BatchProgress``); only this module draws.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional, Tuple

import click

Update = Optional[Callable[[int, int], None]]
Step = Optional[Callable[[str, int, int], None]]


def _terminal() -> bool:
    return sys.stderr.isatty()


def _tqdm(**kwargs):
    from tqdm.auto import tqdm
    return tqdm(dynamic_ncols=True, file=sys.stderr, **kwargs)


# Off a terminal a long restore says where it is at most this often (seconds), so a log shows it
# alive; FLOWRT_PROGRESS_EVERY (seconds, 'inf' for never) overrides it.
LOG_EVERY_S = 5.0


def _log_every(given: Optional[float]) -> float:
    if given is not None:
        return given
    try:
        return float(os.environ.get("FLOWRT_PROGRESS_EVERY", LOG_EVERY_S))
    except ValueError:
        return LOG_EVERY_S


def stage_bars(name: str, quiet: bool = False, log_every: Optional[float] = None) -> Tuple[Step, Callable[[], None]]:
    """Progress of a whole-image restore, one stage at a time (``RestorationPlan.stages``: the
    denoiser, the splitting's rounds, the MAP's iterations): (on_step(stage, done, total), close).

    On a terminal a tqdm bar per stage, each with its own rate and so an honest ETA (the denoiser's
    seconds never count as MAP steps); off one, a line at most every ``log_every`` seconds
    (none for a restore that ends sooner, none with -q)."""
    if _terminal():
        bars = {}

        def on_step(stage, done, total):
            if stage not in bars:
                for bar in bars.values():
                    bar.close()
                bars.clear()
                bars[stage] = _tqdm(total=total, desc=stage, unit="it" if stage == "MAP" else "step", leave=True)
            bar = bars[stage]
            bar.total, bar.n = total, done
            bar.refresh()

        def close():
            for bar in bars.values():
                bar.close()
        return on_step, close
    if quiet:
        return None, lambda: None
    clock = _Throttle(_log_every(log_every))

    def log_step(stage, done, total):
        if clock.due():
            click.echo(f"{name}: {stage} {done}/{total}, {clock.elapsed():.0f} s", err=True)
    return log_step, lambda: None


class _Throttle:
    """due() is True at most once every ``every`` seconds, first ``every`` seconds after creation."""

    def __init__(self, every: float):
        self.every, self.start = every, time.monotonic()
        self.last = self.start

    def restart(self) -> None:
        """Count from now: the work to time starts here."""
        self.start = self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.every:
            return False
        self.last = now
        return True


def tile_bar(total: int, stages, quiet: bool = False, log_every: Optional[float] = None):
    """Progress of a tiled restore of ``total`` tiles: (on_tile, on_step, close). stages: the plan's
    ``stages()``, which every tile runs.

    A tqdm bar counting tiles on a terminal, fractional within a tile (its stages in turn) so its
    ETA moves; when stderr is not a terminal, a line at most every ``log_every`` seconds with the
    ETA from the tiles done in this run (none with -q)."""
    order = {stage: i for i, (stage, _) in enumerate(stages)}
    state = {"done": 0, "resumed": None, "logged": False}
    clock = _Throttle(_log_every(log_every))
    bar = _tqdm(total=total, desc="tiles", unit="tile", leave=True) if _terminal() else None

    def on_step(stage, done, steps):
        if bar is not None and steps and order:
            bar.n = round(state["done"] + (order.get(stage, 0) + done / steps) / len(order), 2)
            bar.refresh()

    def on_tile(done, tiles):
        state["done"] = done
        if state["resumed"] is None:  # the first call: what earlier runs finished, no work of this run's
            state["resumed"] = done
            clock.restart()
            if bar is not None:   # tqdm's rate counts from ``initial`` and the reset
                bar.reset(total=tiles)
                bar.initial = done
        if bar is not None:
            bar.total, bar.n = tiles, done
            bar.refresh()
        elif not quiet and done > state["resumed"] and (clock.due() or (done == tiles and state["logged"])):
            state["logged"] = True
            elapsed = clock.elapsed()
            eta = elapsed / max(done - state["resumed"], 1) * (tiles - done)
            click.echo(f"tile {done}/{tiles}, {elapsed:.0f} s, ETA {eta:.0f} s", err=True)

    return on_tile, on_step, (bar.close if bar is not None else (lambda: None))


class TerminalBatchProgress:
    """Two bars: images (kept on screen at the end) and the current image's current stage
    (denoise, split rounds, MAP iterations)."""

    def __init__(self, total: int):
        self.images = _tqdm(total=total, desc="images", unit="img", position=0, leave=True)
        self.map = _tqdm(total=1, desc="MAP", unit="step", position=1, leave=False)

    def step(self, stage: str, done: int, total: int) -> None:
        if self.map.desc != stage:
            self.map.reset(total=total)
            self.map.set_description_str(stage, refresh=False)
        self.map.total, self.map.n = total, done
        self.map.refresh()

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None:
        self.images.update(1)

    def close(self) -> None:
        self.map.close()
        self.images.close()


class LineBatchProgress:
    """Off a terminal: one line per finished image, ``[3/40] name: 12.4 s`` (nothing when quiet)."""
    step = None

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None:
        if not self.quiet:
            click.echo(f"[{index}/{total}] {name}: {seconds:.1f} s" + (f" ({note})" if note else ""), err=True)

    def close(self) -> None:
        pass


def batch_progress(total: int, quiet: bool):
    """The batch's progress for this stderr: bars on a terminal, else lines."""
    return TerminalBatchProgress(total) if _terminal() else LineBatchProgress(quiet)
