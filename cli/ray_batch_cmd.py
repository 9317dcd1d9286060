"""``flowrt batch --ray``: the options mapped onto ``flowrt.distributed`` (imported only with --ray)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click


def batch_on_ray(job, opts, tiling, model_dir, address: str, output: str, *, bit_depth=None, verbose=False):
    """Run the planned ``job`` on the Ray cluster at ``address``; the BatchSummary."""
    from flowrt.distributed.cluster import RaySettings, import_ray
    from flowrt.distributed.worker import PriorSpec
    from flowrt.pipeline.run import model_key

    settings = RaySettings(address=address, output=output).validate()
    import_ray()  # without Ray: one line saying how to install it, before anything else
    from flowrt.distributed.ray_batch import run_batch_on_ray
    spec = PriorSpec(_absolute(model_dir), opts.engine, opts.device, model_key(model_dir))
    from flowrt.numeric.degradations import REGISTRY
    files = {d.option: getattr(opts, d.option) for d in REGISTRY.values() if d.path}
    opts = dataclasses.replace(opts, mask=_absolute(opts.mask),
                               **{k: _absolute(v) if v and Path(v).is_file() else v for k, v in files.items()})
    report = run_batch_on_ray(job, opts, tiling, spec, settings, bit_depth=bit_depth,
                              report=lambda line: click.echo(line, err=True), verbose=verbose)
    return report.summary


def _absolute(path):
    """A path as every worker must see it: absolute (a worker's working folder is not ours)."""
    return None if path is None else str(Path(path).resolve())
