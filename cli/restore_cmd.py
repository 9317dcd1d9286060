"""flowrt restore: repair one image."""
from __future__ import annotations

import click

from .common import report_errors, setup_logging
from .restore_options import (build_options, build_tiling, iteration_bar, restoration_options, tile_bar,
                              tiling_options)


@click.command()
@click.argument("input_path", metavar="IN", type=str)
@click.option("-o", "--output", "output_path", required=True, metavar="OUT", help="Output image ('-' for PNG on stdout).")
@restoration_options
@tiling_options
@report_errors
def restore(input_path, output_path, model_dir, bit_depth, verbose, tile, overlap, resume, **solver_args):
    """Restore IN (a path, or '-' for stdin) and write OUT.

    With no options, a JPEG is restored with its own quantisation tables and the noise
    level is estimated from the image. Images above 1024x1024 output pixels are restored
    in overlapping tiles (TIFF to TIFF streams, in bounded memory); --resume continues an
    interrupted tiled run.
    """
    setup_logging(verbose)
    opts = build_options(**solver_args)
    tiling = build_tiling(tile, overlap, resume)
    from flowrt.prior.engines import load_prior
    from flowrt.device import resolve_device
    from flowrt.pipeline.run import model_key, prepare_restore, run_restore

    job = prepare_restore(input_path, output_path, opts, tiling, bit_depth=int(bit_depth) if bit_depth else None)
    device = resolve_device(opts.device)
    prior = load_prior(model_dir, opts.engine, device)
    settings = job.settings(prior.multiple)
    if verbose:
        click.echo(f"{job.headline()}; {opts.solver.space} space, {'auto' if opts.solver.iters is None else opts.solver.iters} iterations on {device}"
                   + (f"; {settings.describe()}" if settings else ""), err=True)
    if settings is None:
        on_tile, (on_iteration, close) = None, iteration_bar(True)
    else:
        on_tile, on_iteration, close = tile_bar(settings.count, bool(verbose))
    try:
        run_restore(job, prior, opts, device=device, model=model_key(model_dir) if settings else "",
                    on_iteration=on_iteration, on_tile=on_tile)
    finally:
        close()
    if verbose:
        click.echo(f"wrote {output_path}", err=True)
