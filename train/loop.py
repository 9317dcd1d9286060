"""The training loop: one function, readable top to bottom.

Runs on CPU or CUDA, in one process or under ``torchrun`` (DistributedDataParallel,
gloo on CPU, nccl on CUDA). Rank 0 logs metrics as JSON lines, validates and
writes checkpoints; ``resume=True`` continues bit-for-bit from ``out/last.pt``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.distributed as dist

from flowrt.device import resolve_device
from flowrt.io.atomic import atomic_file

from .checkpoint import FORMAT, CheckpointError, atomic_save, check_architecture, read_checkpoint
from .config import TrainConfig, to_dict
from .data import dequantize, fixed_crops, load_folder, random_crops
from .losses import TrainingObjective, aux_count
from flowrt.prior.flow import FlowModel

log = logging.getLogger("flowrt.train")


def lr_at(step: int, cfg) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``lr * min_lr_ratio``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _dist_setup(device: torch.device):
    """(rank, world) and process group when launched by torchrun; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


@torch.no_grad()
def validate(model: FlowModel, crops_u8: torch.Tensor, device: torch.device, batch: int = 32) -> float:
    """Mean bits/dim over fixed validation crops, with fixed dequantisation noise."""
    gen = torch.Generator().manual_seed(0)
    model.eval()
    total = 0.0
    for i in range(0, len(crops_u8), batch):
        x = dequantize(crops_u8[i:i + batch], gen).to(device)
        total += float(model.bits_per_dim(x).sum())
    model.train()
    return total / len(crops_u8)


def _gather_rng(gen: torch.Generator, world: int):
    states = [gen.get_state()]
    if world > 1:
        states = [None] * world
        dist.all_gather_object(states, gen.get_state())
    return states


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Dict[str, float]:
    """Train a flow prior as ``cfg`` says; returns the last logged metrics."""
    cfg.validate()
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    rank, world, device = _dist_setup(resolve_device(cfg.run.device))
    out = Path(cfg.run.out)
    ckpt_path = out / "last.pt"
    ckpt = None
    if resume:
        if not ckpt_path.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = read_checkpoint(str(ckpt_path))
        check_architecture(ckpt, cfg.model, str(ckpt_path))
    elif ckpt_path.exists():
        # A fresh run would silently replace a trained checkpoint and mix two runs in one log.
        raise CheckpointError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out")

    data = load_folder(cfg.data.train_dir, cfg.data.patch)
    val = None
    if cfg.data.val_dir and rank == 0:
        val = fixed_crops(load_folder(cfg.data.val_dir, cfg.data.patch).images, cfg.data.val_crops_per_image, cfg.data.patch)

    torch.manual_seed(cfg.run.seed)
    gen = torch.Generator().manual_seed(cfg.run.seed * 1000 + rank)
    model = FlowModel(cfg.model)
    objective = TrainingObjective(model, cfg.loss)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    step = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        gen.set_state(ckpt["rng"]["data"][rank])
    else:
        init_gen = torch.Generator().manual_seed(cfg.run.seed + 999)
        model.initialize(dequantize(random_crops(data.images, 4 * cfg.data.batch, cfg.data.patch, init_gen), init_gen))
    model.to(device)
    for state in opt.state.values():
        for k, v in state.items():
            if torch.is_tensor(v) and k != "step":
                state[k] = v.to(device)
    runner = objective
    if world > 1:
        runner = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        if data.skipped_corrupt or data.skipped_small:
            log.warning("training on %d images; skipped %d unreadable and %d too small",
                        len(data.images), len(data.skipped_corrupt), len(data.skipped_small))
    metrics_file = _open_metrics(out / "metrics.jsonl", step) if rank == 0 else None
    bar = _progress(step, cfg.optim.steps, enabled=progress and rank == 0)
    last: Dict[str, float] = {}
    a = aux_count(cfg.data.batch, cfg.loss)
    t0, seen = time.perf_counter(), 0
    try:
        while step < cfg.optim.steps:
            x = dequantize(random_crops(data.images, cfg.data.batch, cfg.data.patch, gen), gen)
            xi = torch.randn((a,) + x.shape[1:], generator=gen) * cfg.loss.xi_std
            eta = torch.randn((a,) + x.shape[1:], generator=gen) * cfg.loss.eta_std
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg.optim)
            terms = runner(x.to(device), xi.to(device), eta.to(device))
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_norm)
            if not torch.isfinite(terms["loss"]):
                raise FloatingPointError(f"loss became {float(terms['loss'])} at step {step}; lower optim.lr")
            opt.step()
            step += 1
            seen += x.shape[0] * world
            final = step == cfg.optim.steps
            validating = val is not None and (step % cfg.run.val_every == 0 or final)
            # A validation step is always logged, so val_every need not be a multiple of log_every.
            if rank == 0 and (step % cfg.run.log_every == 0 or validating or final):
                last = {k: float(v.detach()) for k, v in terms.items()}
                last.update(step=step, lr=lr_at(step - 1, cfg.optim), grad_norm=float(grad_norm),
                            patches_per_s=seen / (time.perf_counter() - t0))
                if validating:
                    last["val_bpd"] = validate(model, val, device)
                metrics_file.write(json.dumps(last) + "\n")
                metrics_file.flush()
                bar.set_postfix(loss=f"{last['loss']:.3f}", bpd=f"{last['nll_bpd']:.3f}",
                                val=f"{last.get('val_bpd', float('nan')):.3f}")
            bar.update(1)
            if step % cfg.run.ckpt_every == 0 or step == cfg.optim.steps:
                _save(model, opt, cfg, step, gen, world, rank, ckpt_path)
        if world > 1:
            # Rank 0 is still writing the last checkpoint when the others finish; tearing gloo down
            # under it aborted a rank now and then ('terminate called without an active exception').
            dist.barrier()
    finally:
        bar.close()
        if metrics_file:
            metrics_file.close()
        if world > 1:
            dist.destroy_process_group()
    return last


def _save(model, opt, cfg: TrainConfig, step: int, gen, world: int, rank: int, path: Path) -> None:
    rng = _gather_rng(gen, world)
    if rank != 0:
        return
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save({"format": FORMAT, "config": to_dict(cfg), "model": state, "optimizer": opt.state_dict(),
                 "step": step, "rng": {"data": rng}}, path)


def _open_metrics(path: Path, step: int):
    """The metrics log for appending, holding only rows up to ``step`` (0: a fresh log).

    Rows logged after the checkpoint a run resumes from are dropped, since the
    resumed run logs those steps again; the log then reads as one unbroken run.
    """
    kept = []
    if step > 0 and path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:   # a line cut short by the crash being resumed from
                continue
            if isinstance(row, dict) and row.get("step", 0) <= step:
                kept.append(line)
    with atomic_file(path, "w") as fh:
        fh.write("".join(line + "\n" for line in kept))
    return open(path, "a")


def _progress(start: int, total: int, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True)
