"""Checkpoints: weights, full config, step, optimiser and RNG state, written atomically.

A checkpoint is a ``torch.save`` dict with ``format == FORMAT``. It embeds the
whole TrainConfig, so a model can always be rebuilt from the file alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from flowrt.io.atomic import atomic_file
from flowrt.prior.checkpoint import FORMAT, CheckpointError, flow_from_checkpoint, read_checkpoint  # noqa: F401
from flowrt.prior.flow import FlowModel

from .config import ModelConfig, TrainConfig, from_dict


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        torch.save(obj, fh)


def load_model(path: str) -> Tuple[FlowModel, TrainConfig]:
    """Rebuild the model a checkpoint describes and its whole training config (CPU, eval mode)."""
    ckpt = read_checkpoint(path)
    model = flow_from_checkpoint(ckpt, path)
    try:
        cfg = from_dict(TrainConfig, ckpt["config"])
    except Exception as exc:
        raise CheckpointError(f"{path}: its config is not a training config ({str(exc).splitlines()[0]})") from None
    return model, cfg


def check_architecture(ckpt: Dict[str, Any], expected: ModelConfig, path: str) -> None:
    """Refuse to resume a checkpoint whose architecture differs from the configured one."""
    found = from_dict(ModelConfig, ckpt["config"].get("model", {}))
    if found != expected:
        raise CheckpointError(f"{path} holds another architecture ({found}) than the config asks for ({expected})")
