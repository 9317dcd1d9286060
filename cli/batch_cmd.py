"""flowrt batch: restore every image of a folder."""
from __future__ import annotations

import click

from .common import report_errors, setup_logging
from .progress import batch_progress
from .restore_options import build_options, build_output, build_tiling, restoration_options, tiling_options


@click.command()
@click.argument("input_dir", metavar="IN_DIR", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "output_dir", required=True, metavar="OUT_DIR", type=click.Path(file_okay=True),
              help="Output folder (created); file names follow the inputs, a JPEG or WebP input is written as "
                   "PNG unless --format says otherwise.")
@click.option("--recursive", is_flag=True, help="Descend into sub-folders, keeping the folder structure.")
@click.option("--skip-existing", is_flag=True, help="Leave images whose output exists already (resume a batch).")
@restoration_options
@tiling_options
@report_errors
def batch(input_dir, output_dir, recursive, skip_existing, model_dir, fmt, quality, bit_depth, quiet, verbose,
          tile, overlap, resume, **fields):
    """Restore every PNG, JPEG, TIFF, WebP and BMP in IN_DIR into OUT_DIR.

    A file that cannot be read or restored is reported and skipped; the exit code is 1
    when any failed. Large images are tiled as in `flowrt restore`; --resume continues
    interrupted tiled ones. Off a terminal, one line per image ([3/40] name: 12.4 s);
    a summary line at the end (-q: only errors and the summary).
    """
    setup_logging(verbose)
    opts = build_options(**fields)
    output = build_output(fmt, quality, bit_depth)
    tiling = build_tiling(tile, overlap, resume)
    from flowrt.device import resolve_device
    from flowrt.pipeline.batch import BatchJob, run_batch
    from flowrt.pipeline.run import model_key
    from flowrt.prior.engines import load_prior

    job = BatchJob.plan(input_dir, output_dir, recursive=recursive, skip_existing=skip_existing, output=output)
    device = resolve_device(opts.device)
    prior = load_prior(model_dir, opts.engine, device)
    summary = run_batch(job, opts, prior, device=device, output=output,
                        report=lambda line: click.echo(line, err=True), verbose=bool(verbose), tiling=tiling,
                        model=model_key(model_dir), progress=batch_progress(len(job.pairs), opts.solver.iters, quiet))
    click.echo(summary.line(), err=True)
    if summary.failed:
        raise SystemExit(1)
