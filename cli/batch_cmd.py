"""flowrt batch: restore every image of a folder."""
from __future__ import annotations

import click

from .common import one_line, report_errors, score_map_prior, setup_logging
from .progress import batch_progress
from .restore_options import build_options, build_output, build_tiling, restoration_options, tiling_options


@click.command()
@click.argument("input_dir", metavar="IN_DIR", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "output_dir", required=True, metavar="OUT_DIR", type=click.Path(file_okay=True),
              help="Output folder (created); file names follow the inputs, a JPEG or WebP input is written as "
                   "PNG unless --format says otherwise.")
@click.option("--recursive", is_flag=True, help="Descend into sub-folders, keeping the folder structure.")
@click.option("--skip-existing", is_flag=True, help="Leave images whose output exists already (resume a batch).")
@click.option("--report", "report_path", metavar="PAGE.html", type=click.Path(dir_okay=False),
              help="Also write one self-contained HTML page: before/after sliders, plans, timings, score maps.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
              help="Spread the images (and a large image's tiles) over a Ray cluster: 'auto' (the default: "
                   "the running cluster), 'local' (start one here), or HOST:PORT / ray://HOST:PORT.")
@click.option("--ray-output", type=click.Choice(["driver", "worker"]), default=None,
              help="With --ray, who writes whole images: 'driver' (default; workers need no shared folders) "
                   "or 'worker' (every node sees IN_DIR and OUT_DIR at the same paths).")
@restoration_options
@tiling_options
@report_errors
def batch(input_dir, output_dir, recursive, skip_existing, report_path, ray_address, ray_output, model_dir, fmt,
          quality, bit_depth, quiet, verbose, tile, overlap, resume, **fields):
    """Restore every PNG, JPEG, TIFF, WebP and BMP in IN_DIR into OUT_DIR.

    A file that cannot be read or restored is reported and skipped; the exit code is 1
    when any failed. Large images are tiled as in `flowrt restore`; --resume continues
    interrupted tiled ones. Off a terminal, one line per image ([3/40] name: 12.4 s);
    a summary line at the end (-q: only errors and the summary).
    """
    setup_logging(verbose)
    if report_path:
        from flowrt.report.paths import check_output
        check_output(report_path, (".html", ".htm"), "report", created=(output_dir,))
    opts = build_options(**fields)
    output = build_output(fmt, quality, bit_depth)
    tiling = build_tiling(tile, overlap, resume)
    from flowrt.pipeline.batch import BatchJob, run_batch
    from flowrt.pipeline.run import model_key
    from flowrt.prior.engines import open_engine

    if ray_output and not ray_address:
        raise click.UsageError("--ray-output goes with --ray")
    if ray_address and quality is not None:
        raise click.UsageError("--quality is not available with --ray yet (--format is)")
    job = BatchJob.plan(input_dir, output_dir, recursive=recursive, skip_existing=skip_existing, output=output)
    if ray_address:
        from .ray_batch_cmd import batch_on_ray
        summary = batch_on_ray(job, opts, tiling, model_dir, ray_address, ray_output or "driver",
                               bit_depth=output.bit_depth, verbose=bool(verbose))
        click.echo(summary.line(), err=True)
        if report_path:
            _write_report(report_path, summary, opts, model_dir, input_dir)
        raise SystemExit(1 if summary.failed else 0)
    device, prior = open_engine(model_dir, opts.engine, opts.device, opts.solver.space)
    summary = run_batch(job, opts, prior, device=device, output=output,
                        report=lambda line: click.echo(one_line(line), err=True), verbose=bool(verbose), tiling=tiling,
                        model=model_key(model_dir), progress=batch_progress(len(job.pairs), quiet))
    click.echo(summary.line(), err=True)
    if report_path:
        _write_report(report_path, summary, opts, model_dir, input_dir)
    if summary.failed:
        raise SystemExit(1)


def _write_report(report_path, summary, opts, model_dir, input_dir) -> None:
    from flowrt.report.batch_page import settings_rows, write_batch_report
    write_batch_report(report_path, summary, settings=settings_rows(opts, model_dir),
                       flow=score_map_prior(model_dir), input_dir=input_dir)
    click.echo(f"report: {report_path}", err=True)
