"""flowrt train: fit a flow prior on a folder of clean photos."""
from __future__ import annotations

import os

import click

from .common import report_errors, setup_logging

# What --help shows as each flag's default: TrainConfig's own defaults, written out so that --help does
# not import the training package (tests/test_small_things.py checks they still match TrainConfig).
SHOWN_DEFAULTS = {"data__train_dir": "../shared/data/train", "data__val_dir": "../shared/data/val",
                  "run__out": "runs/default", "optim__steps": "20000", "data__batch": "16", "data__patch": "64",
                  "optim__lr": "0.001", "run__device": "auto", "run__threads": "0", "run__seed": "0"}


def _shown(name: str) -> dict:
    return {"show_default": SHOWN_DEFAULTS[name]}


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (sections model, data, loss, optim, run).")
@click.option("--data", "data__train_dir", **_shown("data__train_dir"), help="Folder of training photos (PNG, JPEG, TIFF).")
@click.option("--val", "data__val_dir", **_shown("data__val_dir"), help="Folder of validation photos.")
@click.option("--out", "run__out", **_shown("run__out"), help="Run folder: checkpoints, metrics.jsonl, config.json.")
@click.option("--steps", "optim__steps", **_shown("optim__steps"), type=click.IntRange(min=1), help="Total optimisation steps.")
@click.option("--batch", "data__batch", **_shown("data__batch"), type=click.IntRange(min=1), help="Patches per step (per process).")
@click.option("--patch", "data__patch", **_shown("data__patch"), type=click.IntRange(min=8), help="Patch side in pixels.")
@click.option("--lr", "optim__lr", **_shown("optim__lr"), type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--device", "run__device", **_shown("run__device"), type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train.")
@click.option("--threads", "run__threads", **_shown("run__threads"), type=click.IntRange(min=0), help="CPU threads for torch (0: default).")
@click.option("--seed", "run__seed", **_shown("run__seed"), type=int, help="Random seed.")
@click.option("--resume", is_flag=True, help="Continue bit-for-bit from OUT/last.pt.")
@click.option("-v", "--verbose", count=True, help="Log more (-vv: debug).")
@report_errors
def train(config_path, resume, verbose, **overrides):
    """Train a flow prior; CLI flags override the config file's keys (the defaults shown are used where
    neither sets a key)."""
    setup_logging(max(verbose, 1))
    from flowrt.train.config import load_yaml, override
    from flowrt.device import resolve_device
    from flowrt.train.loop import train as run_training

    cfg = override(load_yaml(config_path), **overrides).validate()
    resolve_device(cfg.run.device)  # fail on an impossible --device before loading any data
    last = run_training(cfg, resume=resume)
    if int(os.environ.get("RANK", "0")) != 0:   # under torchrun only rank 0 reports
        return
    summary = ", ".join(f"{k} {last[k]:.4f}" for k in ("nll_bpd", "val_bpd") if k in last)
    click.echo(f"trained to step {last.get('step', cfg.optim.steps)} in {cfg.run.out}" + (f" ({summary})" if summary else ""))
