"""The manifest of an exported prior: what the graphs are, how to feed them, and how they verified.

Written last, atomically, and only after verification passed, so a folder with a manifest is a
prior that reproduces its checkpoint's density; ``flowrt.prior.folders`` reads it back.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Dict

import yaml

from flowrt import __version__
from flowrt.io.atomic import atomic_file
from flowrt.prior.folders import (FORWARD_ONNX, GENERATOR_VJP_ONNX, GRADIENT_FILES, INVERSE_ONNX, MANIFEST_FORMAT,
                                  MANIFEST_NAME, MODEL_FILES, PRIOR_GRAD_ONNX, sha256_file)

LATENT_LAYOUT = (
    "u has the image's shape (B, 3, H, W) and is standard normal under the model. Level l "
    "(0 = finest) squeezes 2x2 blocks into channels; every level but the last factors out half its "
    "channels, and the factored halves are un-squeezed back into place, so u[:, :, i, j] stays near "
    "pixel (i, j). FlowModel.level_map(H, W) gives the level that owns each entry.")


def library_versions() -> Dict[str, str]:
    """Versions of everything that shaped the graphs and the figures."""
    import numpy
    import onnx
    import onnxruntime
    import torch

    return {"flowrt": __version__, "torch": str(torch.__version__), "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def graph_signature(levels: int) -> Dict[str, Any]:
    """Inputs and outputs of both graphs, symbolic shapes as ONNX names them."""
    image = ["batch", 3, "height", "width"]
    return {
        FORWARD_ONNX: {"inputs": {"x": {"shape": image, "dtype": "float32", "range": "[0, 1]"}},
                       "outputs": {"u": {"shape": image, "dtype": "float32"},
                                   "logdet": {"shape": ["batch"], "dtype": "float32", "meaning": "log|det du/dx|, nats"},
                                   "log_prob": {"shape": ["batch"], "dtype": "float32",
                                                "meaning": "log p(x) on [0,1]^D, nats"}}},
        INVERSE_ONNX: {"inputs": {"u": {"shape": image, "dtype": "float32"}},
                       "outputs": {"x": {"shape": image, "dtype": "float32", "range": "not clipped"},
                                   "logdet": {"shape": ["batch"], "dtype": "float32", "meaning": "log|det dx/du|, nats"}}},
    }


def gradient_signature() -> Dict[str, Any]:
    """Inputs and outputs of the two gradient graphs (always float32, see export/grad_export.py)."""
    image = ["batch", 3, "height", "width"]
    return {
        PRIOR_GRAD_ONNX: {"inputs": {"x": {"shape": image, "dtype": "float32", "range": "[0, 1]"}},
                          "outputs": {"nll": {"shape": ["batch"], "dtype": "float32", "meaning": "-log p(x), nats"},
                                      "grad": {"shape": image, "dtype": "float32", "meaning": "d nll / dx"}}},
        GENERATOR_VJP_ONNX: {
            "inputs": {"u": {"shape": image, "dtype": "float32"},
                       "v": {"shape": image, "dtype": "float32", "meaning": "cotangent of x, e.g. dE_data/dx"}},
            "outputs": {"x": {"shape": image, "dtype": "float32", "meaning": "T(u), not clipped"},
                        "logdet": {"shape": ["batch"], "dtype": "float32", "meaning": "log|det dx/du|, nats"},
                        "e_prior": {"shape": ["batch"], "dtype": "float32",
                                    "meaning": "0.5 ||u||^2 + logdet = -log p(T(u)) - (D/2) log(2 pi), nats"},
                        "e_prior_grad": {"shape": image, "dtype": "float32", "meaning": "d e_prior / du"},
                        "vjp": {"shape": image, "dtype": "float32", "meaning": "v^T dx/du"}},
            "latent_map_gradient": "dE/du = vjp + lam * e_prior_grad for E = E_data(T(u)) + lam * e_prior(u)"},
    }


def build_manifest(train_config: Dict[str, Any], graphs: Dict[str, Any], verification: Dict[str, Any],
                   folder: Path, source: str) -> Dict[str, Any]:
    """The manifest dict for the files now in ``folder``.

    ``graphs``: opset, ir_version, exporter, precision. ``verification``: Report.to_dict().
    The gradient graphs are described and hashed when ``folder`` holds them.
    """
    levels = int(train_config["model"]["levels"])
    gradients = tuple(name for name in GRADIENT_FILES if (Path(folder) / name).is_file())
    return {
        "format": MANIFEST_FORMAT,
        "source_checkpoint": source,
        "precision": graphs["precision"],
        "opset": graphs["opset"],
        "ir_version": graphs["ir_version"],
        "exporter": graphs["exporter"],
        "architecture": dict(train_config["model"]),
        "size_rule": {"multiple": 2 ** levels,
                      "rule": f"height and width divisible by 2^levels = {2 ** levels}; batch, height and width are dynamic"},
        "latent_layout": LATENT_LAYOUT,
        "density": "log_prob = sum log N(u; 0, 1) + logdet (nats); bits/dim of the 8-bit image = "
                   "-log_prob / (D ln 2) + 8 for x = (k + v) / 256, v in [0, 1) (dequantisation)",
        "graphs": dict(graph_signature(levels), **{k: v for k, v in gradient_signature().items() if k in gradients}),
        "files": {name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
                  for name in MODEL_FILES + gradients},
        "versions": library_versions(),
        "verification": verification,
        "train_config": train_config,
    }


class _PlainDumper(yaml.SafeDumper):
    """SafeDumper without &anchors: the manifest is read by people too."""

    def ignore_aliases(self, data) -> bool:
        return True


def write_manifest(folder: Path, manifest: Dict[str, Any]) -> Path:
    """Write ``folder/manifest.yaml`` through a temporary file and a rename."""
    path = Path(folder) / MANIFEST_NAME
    with atomic_file(path, "w", permissions=0o644) as fh:  # 0644: it ships as package data
        yaml.dump(manifest, fh, Dumper=_PlainDumper, sort_keys=False, width=110)
    return path
