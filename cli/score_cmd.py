"""flowrt score: bits per dimension of a photo under an exported prior (and, with --map, where they go)."""
from __future__ import annotations

import click

from .common import report_errors

LOWER_NOTE = ("note: lower is not always better: an over-smoothed image scores lower than the clean photo; "
              "compare images of the same content only")


@click.command("score")
@click.argument("image", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--model", "model_dir", help="Exported prior folder (default: the packaged default prior).")
@click.option("--dequant", type=click.Choice(["uniform", "mid"]), default="uniform", show_default=True,
              help="8-bit dequantisation: (k + v)/256 with v ~ U[0,1) from --seed, or v = 1/2. "
                   "flowrt compare and batch --report score with the defaults.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the uniform dequantisation noise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the prior runs: auto (CUDA when there is one), cpu or cuda.")
@click.option("--map", "map_path", type=click.Path(dir_okay=False), metavar="HEAT.png",
              help="Also write a per-region bits/dim heat map with a colour bar (bright = unlikely, e.g. damaged).")
@report_errors
def score(image, model_dir, dequant, seed, device, map_path):
    """Print IMAGE's code length in bits per dimension (sides not divisible by 2^levels: centre crop).

    Lower means more likely under the prior, which is not always better: an over-smoothed
    image scores lower than the clean photo.
    """
    from flowrt.prior.onnx_backend import Prior
    from flowrt.prior.scoring import crop_note, read_rgb8, score_rgb8

    if map_path:
        from flowrt.errors import missing_torch, torch_installed
        from flowrt.report.heatmap import check_png_destination
        if not torch_installed():   # before any work: the map is drawn by the torch model
            raise missing_torch("--map")
        check_png_destination(map_path, image)
    rgb8, bit_depth = read_rgb8(image)
    prior = Prior(model_dir, device=device)
    result = score_rgb8(prior, rgb8, dequant=dequant, seed=seed, bit_depth=bit_depth)
    notes = crop_note(result, prior.multiple) + (f"on {result.providers[0]}",)
    if map_path:
        _write_map(map_path, rgb8, model_dir, dequant, seed)
        notes += (f"heat map in {map_path}",)
    click.echo(f"{result.bits_per_dim:.4f} bits/dim  {image} ({'; '.join(notes)})")
    click.echo(LOWER_NOTE, err=True)


def _write_map(map_path, rgb8, model_dir, dequant, seed) -> None:
    from flowrt.prior.density_map import bits_map
    from flowrt.prior.folders import load_torch_prior
    from flowrt.report.heatmap import render_heatmap, save_png

    save_png(render_heatmap(bits_map(load_torch_prior(model_dir), rgb8, dequant=dequant, seed=seed).bits), map_path)
