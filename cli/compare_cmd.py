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
@report_errors
def compare(before, after, page_path, model_dir, maps, title):
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
    from flowrt.report.items import load_item
    from flowrt.report.page import render_page, write_page

    started = time.perf_counter()
    flow = score_map_prior(model_dir) if maps else None
    item = load_item(Path(after).name, before, after, flow=flow,
                     details=(("before", str(before)), ("after", str(after))))
    notes = [f"{before} (left, before) against {after} (right, after)",
             f"made by flowrt compare in {time.perf_counter() - started:.1f} s; self-contained, nothing is fetched"]
    write_page(page_path, render_page([item], title=title or f"flowrt: {Path(before).name} vs {Path(after).name}",
                                      notes=notes))
    click.echo(f"wrote {page_path}", err=True)
