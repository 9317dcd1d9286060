"""Does a model folder's manifest tell the truth about its ONNX graphs? Checked when a graph is opened,
before any image is padded or allocated for it.

The manifest's ``levels`` and ``multiple`` decide how far every image is padded (to a multiple of
2^levels), and ``channels`` the tensors' layout; a manifest edited to say 16 levels would make the
MAP pad a 64x64 image to 65536x65536. Hashes do not catch that (the manifest is what lists them), so
the graph is asked: its input's channel dimension must be the manifest's, and the graph must run on
one image of side ``multiple`` and refuse one of side ``multiple / 2`` (a flow of L levels squeezes
2x2 blocks L times, so it needs sides divisible by exactly 2^L). With levels within
``folders.MAX_LEVELS`` the probe images are at most 256 x 256.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from flowrt.errors import ModelError

__all__ = ["check_graph_geometry"]


def _runs(session, name: str, channels: int, side: int) -> bool:
    from flowrt.io.native_stderr import captured_stderr
    probe = np.full((1, channels, side, side), 0.5, np.float32)
    messages: list = []
    try:
        with captured_stderr(messages):   # ORT logs a failed Reshape to fd 2 itself
            session.run(None, {name: probe})
    except Exception:  # noqa: BLE001 - ORT's own error types: the graph refused this size
        return False
    return True


def check_graph_geometry(session, manifest: dict, path: Path) -> None:
    """ModelError (one line naming ``path``) unless the graph held by ``session`` takes inputs of the
    manifest's channel count and exactly the manifest's size multiple."""
    channels = manifest["architecture"].get("channels", 3)
    multiple = int(manifest["size_rule"]["multiple"])
    graph_input = session.get_inputs()[0]
    declared = graph_input.shape[1] if len(graph_input.shape) == 4 else None
    if isinstance(declared, int) and declared != channels:
        raise ModelError(f"{path}: the graph takes {declared} channels but its manifest says {channels}")
    if not _runs(session, graph_input.name, channels, multiple):
        raise ModelError(f"{path}: the graph does not run on a {multiple}x{multiple} image, the size multiple its "
                         "manifest states (size_rule.multiple / architecture.levels are wrong)")
    if multiple > 1 and _runs(session, graph_input.name, channels, multiple // 2):
        raise ModelError(f"{path}: the graph runs on {multiple // 2}x{multiple // 2} images, so its manifest's "
                         f"size multiple {multiple} (architecture.levels) is wrong")
