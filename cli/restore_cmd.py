"""flowrt restore: repair one image."""
from __future__ import annotations

import click

from .common import report_errors, setup_logging
from .restore_options import build_options, iteration_bar, restoration_options


@click.command()
@click.argument("input_path", metavar="IN", type=str)
@click.option("-o", "--output", "output_path", required=True, metavar="OUT", help="Output image ('-' for PNG on stdout).")
@restoration_options
@report_errors
def restore(input_path, output_path, model_dir, bit_depth, verbose, **solver_args):
    """Restore IN (a path, or '-' for stdin) and write OUT.

    With no options, a JPEG is restored with its own quantisation tables and the noise
    level is estimated from the image.
    """
    setup_logging(verbose)
    opts = build_options(**solver_args)
    from flowrt.imageio import check_destination, read_image, write_image
    from flowrt.models import load_torch_prior
    from flowrt.restore import plan_restoration, resolve_device, restore_loaded

    depth = int(bit_depth) if bit_depth else None
    image = read_image(input_path)
    check_destination(output_path, image, bit_depth=depth)  # a bad OUT fails now, not after the MAP run
    plan = plan_restoration(image, opts)
    device = resolve_device(opts.device)
    prior = load_torch_prior(model_dir)
    if verbose:
        click.echo(f"{image.name}: {image.size[0]}x{image.size[1]} {image.format}; {plan.describe()}; "
                   f"{opts.solver.space} space, {opts.solver.iters} iterations on {device}", err=True)
    update, close = iteration_bar(True)
    try:
        restored = restore_loaded(image, plan, prior, opts.solver, device=device, progress=update)
    finally:
        close()
    write_image(output_path, restored, image, bit_depth=depth)
    if verbose:
        click.echo(f"wrote {output_path}", err=True)
