"""Reading flowrt checkpoints into a flow: what the runtime needs of a ``torch.save`` dict.

A checkpoint has ``format == FORMAT`` and embeds its whole training config; the runtime reads
only the ``model`` section (the architecture), training reads the rest (``flowrt.train``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from flowrt.config import from_dict
from flowrt.errors import ModelError
from flowrt.prior.architecture import ModelConfig
from flowrt.prior.flow import FlowModel

FORMAT = "flowrt-checkpoint/1"


class CheckpointError(ModelError):
    """A checkpoint is missing, unreadable, or does not fit what was asked of it."""


def read_checkpoint(path: str) -> Dict[str, Any]:
    """Load a checkpoint dict on the CPU, with a clear error for every way it can be wrong."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable flowrt checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path} is not a flowrt checkpoint (expected format {FORMAT})")
    return ckpt


def flow_from_checkpoint(ckpt: Dict[str, Any], path: str) -> FlowModel:
    """The FlowModel a checkpoint dict describes, with its weights (CPU, eval mode)."""
    try:
        model = FlowModel(from_dict(ModelConfig, ckpt["config"].get("model", {}), "model."))
        model.load_state_dict(ckpt["model"])
    except Exception as exc:
        raise CheckpointError(f"{path}: weights do not match its own config ({str(exc).splitlines()[0]})") from None
    return model.eval()


def load_flow(path: str) -> FlowModel:
    """read_checkpoint + flow_from_checkpoint."""
    return flow_from_checkpoint(read_checkpoint(path), path)
