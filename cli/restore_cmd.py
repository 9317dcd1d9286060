"""flowrt restore: repair one image."""
from __future__ import annotations

import time

import click

from .common import one_line, refuse_terminal_stdout, report_errors, setup_logging
from .progress import stage_bars, tile_bar
from .restore_options import build_options, build_output, build_tiling, restoration_options, tiling_options

EXAMPLES = """\b
Examples:
  flowrt restore photo.jpg -o restored.png           # a JPEG, with its own tables
  flowrt restore noisy.png -o out/ --sigma 25         # into the folder out/, as out/noisy.png
  flowrt restore scan.tif -o small.webp --quality 90  # lossy WebP output
  flowrt restore small.jpg -o big.png --scale 2 --sigma 8
  flowrt restore clean.png -o out.png --force         # restore even a clean image
  cat in.jpg | flowrt restore - -o - > out.png        # stdin to stdout
"""


@click.command(epilog=EXAMPLES)
@click.argument("input_path", metavar="IN", type=str)
@click.option("-o", "--output", "output_path", required=True, metavar="OUT",
              help="Output file, a folder (IN's name kept; --format sets its suffix), or '-' for stdout "
                   "(PNG unless --format).")
@restoration_options
@tiling_options
@report_errors
def restore(input_path, output_path, model_dir, fmt, quality, bit_depth, quiet, verbose, tile, overlap, resume,
            **fields):
    """Restore IN (a path, or '-' for stdin) and write OUT.

    With no options, a JPEG is restored with its own quantisation tables and the noise
    level is estimated from the image; a clean PNG/TIFF/WebP/BMP with nothing to restore
    is written unchanged (say --sigma S, another degradation, or --force). Images above
    640x640 output pixels are restored in overlapping tiles (TIFF to TIFF streams, in
    bounded memory); --resume continues an interrupted tiled run. One summary line on
    stderr at the end (-q: none).
    """
    setup_logging(verbose)
    refuse_terminal_stdout(output_path)
    opts = build_options(**fields)
    output = build_output(fmt, quality, bit_depth)
    tiling = build_tiling(tile, overlap, resume)
    from flowrt.io.output_lock import output_lock
    from flowrt.pipeline.run import prepare_restore

    start = time.monotonic()
    job = prepare_restore(input_path, output_path, opts, tiling, output=output)
    try:
        with output_lock(job.out_path):   # a second run on this OUT fails now, before the prior loads
            _restore(job, opts, model_dir, verbose, quiet, start)
    finally:
        job.source.close()


def _restore(job, opts, model_dir, verbose, quiet, start) -> None:
    from flowrt.pipeline.run import run_restore
    if job.unchanged:  # no prior, no torch: a clean image comes back in about a second
        run_restore(job, None, opts)
        _say(job.summary(time.monotonic() - start), quiet)
        return
    # a restore that is a denoiser's estimate alone loads no prior (no onnxruntime, no torch)
    device, prior = _load(model_dir, opts) if job.plan.needs_prior else _no_prior(opts)
    _run(job, prior, opts, device, model_dir, verbose, quiet)
    if verbose:
        click.echo(f"wrote {job.out_path}", err=True)
    _say(job.summary(time.monotonic() - start), quiet)


def _say(line: str, quiet: bool) -> None:
    if not quiet:
        click.echo(one_line(line), err=True)


def _load(model_dir, opts):
    """(device, prior) of the engine the options ask for (``flowrt.prior.engines.open_engine``): the
    device checked against this machine, then the prior loaded; --engine ort imports no torch."""
    from flowrt.prior.engines import open_engine
    return open_engine(model_dir, opts.engine, opts.device, opts.solver.space)


def _no_prior(opts):
    from flowrt.prior.engines import check_engine_request
    check_engine_request(opts.engine, opts.device)
    return None, None


def _run(job, prior, opts, device, model_dir, verbose, quiet) -> None:
    """run_restore with progress by stage (whole) or by tile (tiled); -v first says what will run."""
    from flowrt.pipeline.run import model_key, prior_multiple, run_restore
    settings = job.settings(prior_multiple(prior))
    stages = job.plan.stages()
    if verbose:
        bound = job.plan.with_engine(prior, device)   # what run_restore binds: named before the work starts
        w, h = job.size
        click.echo(f"{job.name}: {w}x{h} {job.source.format}; {bound.describe()}"
                   + (f"; {settings.describe()}" if settings else ""), err=True)
    if settings is None:
        on_tile, (on_step, close) = None, stage_bars(job.name, quiet)
    else:
        on_tile, on_step, close = tile_bar(settings.count, stages, quiet)
    try:
        run_restore(job, prior, opts, device=device, model=model_key(model_dir) if settings else "",
                    on_step=on_step, on_tile=on_tile)
    finally:
        close()
