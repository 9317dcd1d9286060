"""Model folders: where an exported prior lives, what its manifest says, and whether its files are intact.

An exported prior is a folder (written by ``flowrt export``) holding

    forward.onnx    x (B,3,H,W) float32 in [0,1] -> u (B,3,H,W), logdet (B,), log_prob (B,) nats
    inverse.onnx    u (B,3,H,W) float32          -> x (B,3,H,W), logdet (B,)
    prior_grad.onnx x (B,3,H,W) float32 in [0,1] -> nll (B,) = -log p(x) nats, grad = d nll/dx (B,3,H,W)
    generator_vjp.onnx  u, v (B,3,H,W) -> x = T(u), logdet, e_prior (B,), e_prior_grad, vjp = v^T dx/du
                    (the two gradient graphs are optional; the manifest lists them when present)
    model.pt        the same weights as a flowrt checkpoint (for the torch autograd MAP path)
    manifest.yaml   architecture, size rule, latent layout, opset, sha256 of every file, versions,
                    verification figures; written last, so its presence means the export verified

Only the standard library and yaml load at import: the ONNX Runtime prior and the torch loader
both build on this module, and neither may pull in the other.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import yaml

from flowrt.errors import ModelError

MANIFEST_NAME = "manifest.yaml"
MANIFEST_FORMAT = "flowrt-onnx-prior/1"
FORWARD_ONNX = "forward.onnx"
INVERSE_ONNX = "inverse.onnx"
TORCH_WEIGHTS = "model.pt"
PRIOR_GRAD_ONNX = "prior_grad.onnx"
GENERATOR_VJP_ONNX = "generator_vjp.onnx"
MODEL_FILES = (FORWARD_ONNX, INVERSE_ONNX, TORCH_WEIGHTS)  # every export writes these
# The MAP gradients on ONNX Runtime: ``flowrt export`` writes prior_grad.onnx unless --no-gradients,
# the Python ``export_checkpoint(gradients=...)`` on request (their export takes about a minute even
# for a tiny flow); listed in the manifest when present.
GRADIENT_FILES = (PRIOR_GRAD_ONNX, GENERATOR_VJP_ONNX)
# The flow denoiser (flowrt.denoise.flow): its own graph, added to a folder by
# flowrt.export.denoiser_export and listed in the manifest when present.
DENOISER_ONNX = "denoiser.onnx"
# Its optional second stage: tables fitted on the first stage's estimates as pilots, run after it.
REFINE_ONNX = "denoiser_refine.onnx"
# Its final stage: tables fitted on the splitting's last rounds (flowrt.train.split_data), which the
# splitting's last round runs in place of the Wiener pass.
FINAL_ONNX = "denoiser_final.onnx"
FINAL_PILOT = "splitting-final-round"   # what a final stage's shards and fit name as their pilot
DENOISER_FILES = (DENOISER_ONNX, REFINE_ONNX, FINAL_ONNX)

PACKAGED_MODELS = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "default"

_REQUIRED_KEYS = ("format", "architecture", "size_rule", "files", "precision", "verification")
# At most 8 levels: every image is padded to a multiple of 2^levels, and 256 pixels is already far
# beyond any flow flowrt trains (3 levels); a manifest claiming more would pad a photo to gigapixels.
MAX_LEVELS = 8
SUPPORTED_CHANNELS = 3      # RGB: every graph and loop takes (B, 3, H, W)


def resolve_model_dir(name_or_path: Optional[Union[str, Path]] = None) -> Path:
    """A model folder from a path, a packaged model's name, or None (the packaged default prior).

    A path that exists wins over a packaged name; anything else is a ModelError naming what
    was looked for.
    """
    if name_or_path is None:
        folder = PACKAGED_MODELS / DEFAULT_MODEL
        if not (folder / MANIFEST_NAME).is_file():
            raise ModelError(
                f"the default prior is not installed ({folder} has no {MANIFEST_NAME}); "
                f"export one with `flowrt export CHECKPOINT.pt -o {folder}` or pass --model DIR")
        return folder
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelError(f"{name_or_path} is a file; --model takes a folder written by `flowrt export`")
    packaged = PACKAGED_MODELS / str(name_or_path)
    if "/" not in str(name_or_path) and packaged.is_dir():
        return packaged
    raise ModelError(f"model folder not found: {name_or_path}")


def sha256_file(path: Union[str, Path]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: Union[str, Path]) -> Dict[str, Any]:
    """The manifest of an exported prior folder, checked for format and required keys."""
    folder = Path(model_dir)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"{folder} is not an exported flowrt prior (no {MANIFEST_NAME}; "
                         "an export that failed verification leaves none)")
    try:
        manifest = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not valid YAML ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{path} is not a flowrt prior manifest (expected format {MANIFEST_FORMAT})")
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ModelError(f"{path} lacks the key {missing[0]!r}")
    for key in ("architecture", "size_rule", "files", "verification"):
        if not isinstance(manifest[key], dict):
            raise ModelError(f"{path}: {key!r} must be a mapping")
    levels, multiple = manifest["architecture"].get("levels"), manifest["size_rule"].get("multiple")
    # levels is checked for range before 2 ** levels: a tampered 99999999999 would compute for hours
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= MAX_LEVELS:
        raise ModelError(f"{path}: architecture.levels must be a whole number from 1 to {MAX_LEVELS}, got {levels!r}")
    if multiple != 2 ** levels or isinstance(multiple, bool):
        raise ModelError(f"{path}: size_rule.multiple ({multiple!r}) is not 2^architecture.levels")
    channels = manifest["architecture"].get("channels", SUPPORTED_CHANNELS)
    if isinstance(channels, bool) or channels != SUPPORTED_CHANNELS or not isinstance(channels, int):
        raise ModelError(f"{path}: architecture.channels must be {SUPPORTED_CHANNELS} (RGB), got {channels!r}")
    if manifest["verification"].get("passed") is not True:
        raise ModelError(f"{path} records no passed verification; re-export the model")
    return manifest


def check_files(model_dir: Union[str, Path], manifest: Dict[str, Any], names: Iterable[str]) -> None:
    """Refuse a folder whose listed files are missing or differ from the sha256 in the manifest."""
    folder = Path(model_dir)
    for name in names:
        entry = manifest["files"].get(name)
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        path = folder / name
        if expected is None:
            raise ModelError(f"{folder / MANIFEST_NAME} lists no sha256 for {name}")
        if not path.is_file():
            raise ModelError(f"{path} is missing")
        if sha256_file(path) != expected:
            raise ModelError(f"{path} does not match the sha256 in its manifest (modified or corrupt); re-export it")


def listed_files(manifest: Dict[str, Any]) -> tuple:
    """The files an intact folder must hold: MODEL_FILES plus the gradient and denoiser graphs its manifest lists."""
    return MODEL_FILES + tuple(name for name in GRADIENT_FILES + DENOISER_FILES if name in manifest["files"])


def open_model_dir(name_or_path: Optional[Union[str, Path]], names: Iterable[str]) -> tuple:
    """resolve_model_dir + read_manifest + check_files: (folder, manifest) of an intact prior."""
    folder = resolve_model_dir(name_or_path)
    manifest = read_manifest(folder)
    check_files(folder, manifest, names)
    return folder, manifest


def load_torch_prior(model_dir: Optional[Union[str, Path]] = None):
    """The exported prior's torch FlowModel (float32, frozen, eval), after checking model.pt's hash.

    This is the same density as the ONNX graphs in the folder (export verified that), for the
    passes that need autograd. ``model_dir`` None means the packaged default.
    """
    from flowrt.prior.checkpoint import load_flow

    folder, manifest = open_model_dir(model_dir, [TORCH_WEIGHTS])
    model = load_flow(str(folder / TORCH_WEIGHTS))
    if model.cfg.levels != manifest["architecture"]["levels"]:
        raise ModelError(f"{folder / TORCH_WEIGHTS} does not hold the architecture its manifest describes")
    model.freeze().eval()
    for param in model.parameters():  # a prior, not a model in training: gradients go to the input only
        param.requires_grad_(False)
    return model
