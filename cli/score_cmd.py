"""flowrt score: bits per dimension of a photo under an exported prior."""
from __future__ import annotations

import click

from .common import report_errors


@click.command("score")
@click.argument("image", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--model", "model_dir", help="Exported prior folder (default: the packaged default prior).")
@click.option("--dequant", type=click.Choice(["uniform", "mid"]), default="uniform", show_default=True,
              help="8-bit dequantisation: (k + v)/256 with v ~ U[0,1) from --seed, or v = 1/2.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the uniform dequantisation noise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@report_errors
def score(image, model_dir, dequant, seed, device):
    """Print IMAGE's code length in bits per dimension (sides not divisible by 2^levels: centre crop)."""
    from flowrt.prior.onnx_backend import Prior
    from flowrt.prior.scoring import crop_note, read_rgb8, score_rgb8

    rgb8, bit_depth = read_rgb8(image)
    prior = Prior(model_dir, device=device)
    result = score_rgb8(prior, rgb8, dequant=dequant, seed=seed, bit_depth=bit_depth)
    notes = crop_note(result, prior.multiple) + (f"on {result.providers[0]}",)
    click.echo(f"{result.bits_per_dim:.4f} bits/dim  {image} ({'; '.join(notes)})")
