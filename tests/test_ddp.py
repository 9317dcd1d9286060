"""Two-process CPU DistributedDataParallel training (gloo), launched the way a user would.

``python -m torch.distributed.run`` is ``torchrun`` without relying on the script
being on PATH; it starts ``python -m flowrt.cli.main train`` twice.
"""
from __future__ import annotations

import json

import torch

from flowrt.train.checkpoint import read_checkpoint


def test_python_dash_m_runs_the_cli(run_flowrt):
    proc = run_flowrt("--help")
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout


def test_two_process_cpu_ddp_trains_and_checkpoints(run_python_module, tiny_config, train_dir, tmp_path):
    out = tmp_path / "ddp"
    proc = run_python_module(
        "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "flowrt.cli.main", "train", "--config", tiny_config, "--data", train_dir,
        "--out", out, "--steps", 4, "--device", "cpu", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("trained to step 4") == 1, proc.stdout   # only rank 0 reports

    ckpt = read_checkpoint(str(out / "last.pt"))
    assert ckpt["step"] == 4
    rng = ckpt["rng"]["data"]
    assert len(rng) == 2 and not torch.equal(rng[0], rng[1])   # each rank draws its own crops
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]   # rank 0 alone writes metrics
