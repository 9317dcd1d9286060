"""The options ``restore`` and ``batch`` share, and their mapping onto RestoreOptions /
SolverConfig fields (each flag is one field; nothing is interpreted here)."""
from __future__ import annotations

import sys

import click


class SigmaParam(click.ParamType):
    name = "auto|S"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) or value == "auto":
            return value
        try:
            sigma = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a number", param, ctx)
        if not 0 <= sigma <= 255:  # also refuses nan; above 255 overflowed the data term
            self.fail(f"noise sigma must be from 0 to 255 (0-255 scale), got {value}", param, ctx)
        return sigma


class JpegParam(click.ParamType):
    name = "auto|off|Q"

    def convert(self, value, param, ctx):
        if value in ("auto", "off") or isinstance(value, int):
            return value
        try:
            quality = int(value)
        except ValueError:
            self.fail(f"{value!r} is not auto, off or a quality 1-100", param, ctx)
        if not 1 <= quality <= 100:
            self.fail(f"JPEG quality must be 1-100, got {quality}", param, ctx)
        return quality


_OPTIONS = [
    click.option("--sigma", type=SigmaParam(), default="auto", show_default=True,
                 help="Gaussian noise std on the 0-255 scale; 'auto' estimates it from the image."),
    click.option("--jpeg", type=JpegParam(), default="auto", show_default=True,
                 help="JPEG data term: auto (a JPEG input uses its own tables), off, or the quality Q a PNG was once saved at."),
    click.option("--scale", type=click.IntRange(1, 16), default=1, show_default=True,
                 help="Super-resolution factor (the input was Pillow-bicubic downsampled by it)."),
    click.option("--blur", metavar="SPEC", help="Known blur: 'gaussian:S' (std in px) or a kernel image/.npy file."),
    click.option("--mask", type=click.Path(dir_okay=False), help="Inpainting mask at the input's size: white = missing (to fill), black = observed."),
    click.option("--model", "model_dir", type=click.Path(file_okay=False), help="Exported prior folder (default: the packaged prior)."),
    click.option("--space", type=click.Choice(["image", "latent"]), default=None, help="Optimise over the image (default) or the flow's latent."),
    click.option("--iters", type=click.IntRange(min=0), default=None,
                 help="MAP iterations (default: 20 from a denoised start, 150 otherwise)."),
    click.option("--start", type=click.Choice(["auto", "denoise", "blur"]), default="auto", show_default=True,
                 help="Where the MAP starts: the observation denoised by a DCT filter (needs a noise level, no JPEG "
                      "term), or the lightly blurred observation; auto picks denoise where it applies."),
    click.option("--lam", type=click.FloatRange(min=0), default=None, help="Prior weight lambda, per observed pixel."),
    click.option("--coarse-prior", type=click.FloatRange(min=0), default=None,
                 help="With --scale > 1: weight (times lambda) of the prior on the estimate downsampled back to the input's grid."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--engine", type=click.Choice(["auto", "torch", "ort"]), default="auto", show_default=True,
                 help="What evaluates the prior's gradient: torch autograd, or the exported ONNX Runtime graph."),
    click.option("--seed", type=int, default=None, help="Random seed (0 to 2^63-1)."),
    click.option("--accept-fallback", is_flag=True,
                 help="If the optimiser fails, write its starting estimate (the input, smoothed) and exit 0 "
                      "instead of failing."),
    click.option("--bit-depth", type=click.Choice(["8", "16"]), default=None, help="Output bits per sample (default: as the input)."),
    click.option("-v", "--verbose", count=True, help="Say what was estimated and done."),
]


def restoration_options(func):
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def build_options(sigma, jpeg, scale, blur, mask, space, iters, lam, coarse_prior, device, seed, engine="auto",
                  start="auto", accept_fallback=False):
    """RestoreOptions from the CLI values (None: keep the library default)."""
    import dataclasses

    from flowrt.pipeline.plan import RestoreOptions
    from flowrt.solve.solver import SolverConfig

    given = {"space": space, "iters": iters, "lam": lam, "coarse_prior": coarse_prior, "seed": seed, "start": start,
             "accept_fallback": accept_fallback or None}
    solver = dataclasses.replace(SolverConfig(), **{k: v for k, v in given.items() if v is not None})
    return RestoreOptions(sigma=sigma, jpeg=jpeg, scale=scale, blur=blur, mask=mask, solver=solver,
                          device=device, engine=engine).validate()


def iteration_bar(enabled: bool, desc: str = "MAP", leave: bool = False):
    """A tqdm bar on stderr when it is a terminal; returns (callback(done, total), close)."""
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm.auto import tqdm
    bar = tqdm(desc=desc, unit="it", leave=leave, dynamic_ncols=True)

    def update(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()
    return update, bar.close


_TILING_OPTIONS = [
    click.option("--tile", type=click.IntRange(min=0), default=None, metavar="N",
                 help="Restore in N x N tiles (output pixels; 0 = whole image). Default: whole up to "
                      "1024x1024 output pixels, tiles of 512 above."),
    click.option("--overlap", type=click.IntRange(min=0), default=32, show_default=True,
                 help="Pixels neighbouring tiles share (blended smoothly)."),
    click.option("--resume", is_flag=True, help="Continue an interrupted tiled restore from its finished tiles."),
]


def tiling_options(func):
    for option in reversed(_TILING_OPTIONS):
        func = option(func)
    return func


def build_tiling(tile, overlap, resume):
    """TilingOptions from the CLI values."""
    from flowrt.pipeline.run import TilingOptions

    return TilingOptions(tile=tile, overlap=overlap, resume=resume).validate()


def tile_bar(total: int, verbose: bool, log_every: float = 0.05):
    """Progress of a tiled restore of ``total`` tiles: (on_tile, on_iteration, close).

    A tqdm bar counting tiles (fractional within a tile, so its ETA moves) on a terminal; when
    stderr is not a terminal, with -v, a line per ``log_every`` of the tiles with the ETA; else silent.
    """
    import time

    state = {"done": 0, "start": time.monotonic(), "resumed": None, "logged": -1.0}
    bar = None
    if sys.stderr.isatty():
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc="tiles", unit="tile", dynamic_ncols=True, leave=False)

    def on_iteration(done, iters):
        if bar is not None and iters:
            bar.n = state["done"] + done / iters
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
