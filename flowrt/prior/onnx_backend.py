"""The flow prior run by ONNX Runtime: encode, decode and score images as numpy arrays.

``Prior`` opens a folder written by ``flowrt export`` (checking the sha256 of both graphs
against the manifest) and holds one session per direction. Conventions are the torch model's:

    x  (B, 3, H, W) float32, the image in [0, 1]; H and W divisible by ``multiple`` = 2^levels
    u  (B, 3, H, W) float32, the latent, standard normal under the model
    encode(x) -> (u, log|det du/dx|)     decode(u) -> (x, log|det dx/du|)     log_prob(x) in nats

Sessions never spin idle threads: torch (the autograd MAP path) often shares the CPU with them,
and spinning ORT threads were measured to slow torch about 10x on 2 cores.
"""
from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from flowrt.errors import InputError, ModelError
from flowrt.prior.folders import FORWARD_ONNX, INVERSE_ONNX, open_model_dir

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_PROVIDER_LIBRARIES = {  # (shared bridge, CUDA provider) as onnxruntime-gpu names them
    "posix": ("libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"),
    "nt": ("onnxruntime_providers_shared.dll", "onnxruntime_providers_cuda.dll"),
}


def cuda_provider_loads() -> bool:
    """True when ORT lists the CUDA provider and its library (with cuBLAS, cuDNN...) really loads.

    onnxruntime-gpu lists CUDA even where its libraries are missing; asking for it then prints an
    error before falling back, so probe the provider library quietly first.
    """
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return False
    capi = Path(ort.__file__).parent / "capi"
    bridge, provider = (capi / name for name in _PROVIDER_LIBRARIES.get(os.name, ("", "")))
    if not provider.is_file():
        return True  # an unusual build: let the session decide; get_providers() tells the truth
    try:
        if bridge.is_file():  # the provider takes Provider_GetHost from the bridge
            ctypes.CDLL(str(bridge), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        ctypes.CDLL(str(provider))
    except OSError:
        return False
    return True


def select_providers(device: str = "auto") -> List[str]:
    """ORT providers to request, best first: 'auto' (CUDA where it loads, else CPU), 'cpu' or 'cuda'."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return [CPU]
    if cuda_provider_loads():
        return [CUDA, CPU]
    if device == "cuda":
        raise InputError("the ONNX Runtime CUDA provider cannot load here (no GPU build or CUDA libraries missing)")
    return [CPU]


def session_options(threads: int = 0):
    """ORT SessionOptions: ``threads`` intra-op threads (0: ORT's default), no spinning, quiet logs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3  # fp16 graphs make ORT warn once per node it cannot constant-fold
    return opts


# TF32 convolutions keep ~10 mantissa bits: a density summed over a million pixels needs float32.
CUDA_OPTIONS = {"use_tf32": "0"}


def open_session(path: Path, providers: Sequence[str], threads: int = 0):
    """An InferenceSession on ``path``; a graph ORT cannot load becomes a ModelError."""
    import onnxruntime as ort

    requested = [(p, CUDA_OPTIONS) if p == CUDA else p for p in providers]
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=requested)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise ModelError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0][:200]}") from None


class Prior:
    """An exported flow prior on ONNX Runtime (numpy in, numpy out)."""

    def __init__(self, model_dir: Optional[Union[str, Path]] = None, device: str = "auto", threads: int = 0):
        """Open ``model_dir`` (None: the packaged default); ``threads`` 0 lets ORT choose."""
        self.model_dir, self.manifest = open_model_dir(model_dir, [FORWARD_ONNX, INVERSE_ONNX])
        requested = select_providers(device)
        self._forward = open_session(self.model_dir / FORWARD_ONNX, requested, threads)
        self._inverse = open_session(self.model_dir / INVERSE_ONNX, requested, threads)
        from flowrt.prior.graph_checks import check_graph_geometry
        check_graph_geometry(self._forward, self.manifest, self.model_dir / FORWARD_ONNX)
        self.providers: List[str] = list(self._forward.get_providers())
        self.levels: int = int(self.manifest["architecture"]["levels"])
        self.channels: int = int(self.manifest["architecture"].get("channels", 3))
        self.multiple: int = int(self.manifest["size_rule"]["multiple"])
        self.precision: str = str(self.manifest["precision"])

    @property
    def device(self) -> str:
        """'cuda' when the CUDA provider really runs the graphs, else 'cpu'."""
        return "cuda" if self.providers and self.providers[0] == CUDA else "cpu"

    def check_batch(self, a: np.ndarray, name: str = "image") -> np.ndarray:
        """Validate a (B, C, H, W) batch and return it as contiguous float32 (InputError otherwise)."""
        if not isinstance(a, np.ndarray):
            raise InputError(f"{name} must be a numpy array, got {type(a).__name__}")
        if a.ndim != 4 or a.shape[1] != self.channels or min(a.shape) < 1:
            raise InputError(f"{name} must have shape (B, {self.channels}, H, W), got {a.shape}")
        h, w = a.shape[2:]
        if h % self.multiple or w % self.multiple:
            raise InputError(
                f"{name} is {h}x{w}; this prior needs sides divisible by {self.multiple} (2^{self.levels}): "
                "crop or pad it first")
        if not np.issubdtype(a.dtype, np.floating):
            raise InputError(f"{name} must be floating point ([0, 1] images), got {a.dtype}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"{name} contains NaN or infinite values")
        return a

    def encode(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """x (B,3,H,W) in [0,1] -> (u (B,3,H,W), log|det du/dx| (B,)), float32."""
        u, logdet, _ = self._forward.run(None, {"x": self.check_batch(x, "image")})
        return u, logdet

    def decode(self, u: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """u (B,3,H,W) -> (x (B,3,H,W), log|det dx/du| (B,)), float32; x is not clipped to [0, 1]."""
        x, logdet = self._inverse.run(None, {"u": self.check_batch(u, "latent")})
        return x, logdet

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Continuous log-density of x on [0,1]^D in nats, shape (B,), float64."""
        _, _, log_prob = self._forward.run(None, {"x": self.check_batch(x, "image")})
        return log_prob.astype(np.float64)

    def bits_per_dim(self, x: np.ndarray) -> np.ndarray:
        """Code length of the 8-bit image that x dequantises, bits per dimension, shape (B,).

        Same convention as the torch model: -log p(x) / (D ln 2) + 8, where the 8 bits undo the
        1/256 volume of each dequantisation bin on [0, 1].
        """
        dims = int(np.prod(x.shape[1:]))
        return -self.log_prob(x) / (dims * math.log(2.0)) + 8.0
