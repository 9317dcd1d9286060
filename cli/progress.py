"""Progress a person can read, on stderr: tqdm bars with their total from the first frame, an ETA
and a final line left on screen when stderr is a terminal; plain lines (or nothing) when it is not.

The runtime reports progress through plain callbacks (``on_iteration(done, total)``,
``on_tile(done, total)``, ``flowrt.pipeline.batch.BatchProgress``); only this module draws.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional, Tuple

import click

Update = Optional[Callable[[int, int], None]]


def _terminal() -> bool:
    return sys.stderr.isatty()


def _tqdm(**kwargs):
    from tqdm.auto import tqdm
    return tqdm(dynamic_ncols=True, file=sys.stderr, **kwargs)


def iteration_bar(enabled: bool, total: int, desc: str = "MAP") -> Tuple[Update, Callable[[], None]]:
    """A bar of ``total`` MAP iterations on a terminal; returns (callback(done, total), close)."""
    if not enabled or not _terminal():
        return None, lambda: None
    bar = _tqdm(total=total, desc=desc, unit="it", leave=True)

    def update(done, new_total):
        bar.total = new_total
        bar.n = done
        bar.refresh()
    return update, bar.close


def tile_bar(total: int, verbose: bool, log_every: float = 0.05):
    """Progress of a tiled restore of ``total`` tiles: (on_tile, on_iteration, close).

    A tqdm bar counting tiles (fractional within a tile, so its ETA moves) on a terminal; when
    stderr is not a terminal, with -v, a line per ``log_every`` of the tiles with the ETA; else silent.
    """
    state = {"done": 0, "start": time.monotonic(), "resumed": None, "logged": -1.0}
    bar = _tqdm(total=total, desc="tiles", unit="tile", leave=True) if _terminal() else None

    def on_iteration(done, iters):
        if bar is not None and iters:
            bar.n = round(state["done"] + done / iters, 2)
            bar.refresh()

    def on_tile(done, tiles):
        state["done"] = done
        if state["resumed"] is None:  # tiles finished by an interrupted run do not count for the ETA
            state["resumed"] = done - 1
        if bar is not None:
            bar.total, bar.n = tiles, done
            bar.refresh()
        elif verbose and (done / tiles - state["logged"] >= log_every or done == tiles):
            state["logged"] = done / tiles
            elapsed = time.monotonic() - state["start"]
            eta = elapsed / max(done - state["resumed"], 1) * (tiles - done)
            click.echo(f"tile {done}/{tiles}, {elapsed:.0f} s, ETA {eta:.0f} s", err=True)

    return on_tile, on_iteration, (bar.close if bar is not None else (lambda: None))


class TerminalBatchProgress:
    """Two bars: images (kept on screen at the end) and the current image's MAP iterations."""

    def __init__(self, total: int, iters: int):
        self.images = _tqdm(total=total, desc="images", unit="img", position=0, leave=True)
        self.map = _tqdm(total=iters, desc="MAP", unit="it", position=1, leave=False)

    def iteration(self, done: int, total: int) -> None:
        self.map.total, self.map.n = total, done
        self.map.refresh()

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None:
        self.images.update(1)

    def close(self) -> None:
        self.map.close()
        self.images.close()


class LineBatchProgress:
    """Off a terminal: one line per finished image, ``[3/40] name: 12.4 s`` (nothing when quiet)."""
    iteration = None

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def image_done(self, index: int, total: int, name: str, seconds: float, note: str) -> None:
        if not self.quiet:
            click.echo(f"[{index}/{total}] {name}: {seconds:.1f} s" + (f" ({note})" if note else ""), err=True)

    def close(self) -> None:
        pass


def batch_progress(total: int, iters: int, quiet: bool):
    """The batch's progress for this stderr: bars on a terminal, else lines."""
    return TerminalBatchProgress(total, iters) if _terminal() else LineBatchProgress(quiet)
