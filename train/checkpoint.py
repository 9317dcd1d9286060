"""Checkpoints: weights, full config, step, optimiser and RNG state, written atomically.

A checkpoint is a ``torch.save`` dict with ``format == FORMAT``. It embeds the
whole TrainConfig, so a model can always be rebuilt from the file alone.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from flowrt.errors import ModelError

from .config import ModelConfig, TrainConfig, from_dict
from .model import FlowModel

FORMAT = "flowrt-checkpoint/1"


class CheckpointError(ModelError):
    """A checkpoint is missing, unreadable, or does not fit what was asked of it."""


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str) -> Dict[str, Any]:
    """Load a checkpoint dict on the CPU, with a clear error for every way it can be wrong."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable flowrt checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a flowrt checkpoint (expected format {FORMAT})")
    return ckpt


def load_model(path: str) -> Tuple[FlowModel, TrainConfig]:
    """Rebuild the model a checkpoint describes and load its weights (CPU, eval mode)."""
    ckpt = read_checkpoint(path)
    try:
        cfg = from_dict(TrainConfig, ckpt["config"])
        model = FlowModel(cfg.model)
        model.load_state_dict(ckpt["model"])
    except Exception as exc:
        raise CheckpointError(f"{path}: weights do not match its own config ({str(exc).splitlines()[0]})") from None
    return model.eval(), cfg


def check_architecture(ckpt: Dict[str, Any], expected: ModelConfig, path: str) -> None:
    """Refuse to resume a checkpoint whose architecture differs from the configured one."""
    found = from_dict(ModelConfig, ckpt["config"].get("model", {}))
    if found != expected:
        raise CheckpointError(f"{path} holds another architecture ({found}) than the config asks for ({expected})")
