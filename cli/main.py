"""The ``flowrt`` command group. Each command lives in its own module and imports its heavy
dependencies (torch, onnxruntime, numba) only when it runs, so ``flowrt --help`` is instant."""
from __future__ import annotations

import click

from flowrt import __version__

from .batch_cmd import batch
from .compare_cmd import compare
from .export_cmd import export
from .restore_cmd import restore
from .score_cmd import score
from .train_cmd import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowrt")
def cli() -> None:
    """Restore images (noise, JPEG, blur, downsampling, missing pixels) with a learned flow prior."""


cli.add_command(restore)
cli.add_command(batch)
cli.add_command(train)
cli.add_command(export)
cli.add_command(score)
cli.add_command(compare)


if __name__ == "__main__":  # pragma: no cover
    cli()
