"""flowrt compare: one self-contained HTML page with a before/after slider and score maps."""
from __future__ import annotations

import click

from .common import report_errors, score_map_prior


@click.command("compare")
@click.argument("before", type=click.Path(dir_okay=False, allow_dash=False))
@click.argument("after", type=click.Path(dir_okay=False, allow_dash=False))
@click.option("-o", "--output", "page_path", required=True, metavar="PAGE.html", type=click.Path(dir_okay=False),
              help="The HTML page to write (self-contained: images embedded, nothing fetched).")
@click.option("--model", "model_dir", help="Prior folder for the score maps (default: the packaged default prior).")
@click.option("--maps/--no-maps", default=True, show_default=True,
              help="Show bits/dim heat maps of both images under the prior.")
@click.option("--title", default=None, help="Page title (default: 'flowrt: BEFORE vs AFTER').")
@click.option("--reference", "reference_path", type=click.Path(dir_okay=False), metavar="CLEAN",
              help="A clean reference at AFTER's size: print (and show) PSNR and SSIM of BEFORE and AFTER against it.")
@report_errors
def compare(before, after, page_path, model_dir, maps, title, reference_path):
    """Write an HTML page comparing BEFORE (e.g. the input) with AFTER (e.g. `flowrt restore`'s output).

    AFTER must have BEFORE's size or a whole multiple of it (super-resolution).

    \b
    Example:
      flowrt restore noisy.png -o clean.png
      flowrt compare noisy.png clean.png -o page.html
    """
    import time
    from pathlib import Path

    from flowrt.report.paths import check_output

    check_output(page_path, (".html", ".htm"), "page", (before, after))
    from flowrt.report.items import load_item, score_note
    from flowrt.report.page import render_page, write_page

    started = time.perf_counter()
    flow = score_map_prior(model_dir) if maps else None
    item = load_item(Path(after).name, before, after, flow=flow,
                     details=(("before", str(before)), ("after", str(after))))
    fidelity = _fidelity(reference_path, before, after) if reference_path else None
    notes = [f"{before} (left, before) against {after} (right, after)",
             f"made by flowrt compare in {time.perf_counter() - started:.1f} s; self-contained, nothing is fetched"]
    if flow is not None:
        notes.append(score_note())
    if fidelity:
        notes.append(fidelity)
        click.echo(fidelity)
    write_page(page_path, render_page([item], title=title or f"flowrt: {Path(before).name} vs {Path(after).name}",
                                      notes=notes))
    click.echo(f"wrote {page_path}", err=True)


def _fidelity(reference_path, before, after) -> str:
    """One line: PSNR / SSIM of BEFORE (enlarged nearest-neighbour if smaller) and AFTER against CLEAN."""
    import numpy as np

    from flowrt.errors import InputError
    from flowrt.prior.scoring import read_rgb8
    from flowrt.report.fidelity import psnr, ssim
    clean = read_rgb8(reference_path)[0]
    parts = []
    for label, path in (("before", before), ("after", after)):
        image = read_rgb8(path)[0]
        if image.shape != clean.shape and not (clean.shape[0] % image.shape[0] or clean.shape[1] % image.shape[1]):
            factor = clean.shape[0] // image.shape[0]
            image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
        if image.shape != clean.shape or min(clean.shape[:2]) < 7:
            raise InputError(f"{path} is {image.shape[1]}x{image.shape[0]} and the reference {reference_path} "
                             f"{clean.shape[1]}x{clean.shape[0]}: they must be one size, at least 7x7")
        parts.append(f"{label} {psnr(clean, image):.2f} dB, SSIM {ssim(clean, image):.4f}")
    return f"against {reference_path}: " + "; ".join(parts)
