"""Which implementation evaluates the prior for the MAP, and which loop runs it: torch or ONNX Runtime.

  * ``torch``  the packaged FlowModel (``model.pt``) under the torch MAP loop (``flowrt.solve.solver``)
               and forward models (``flowrt.operators``): autograd through the flow; image or latent
               space; CPU or CUDA.
  * ``ort``    the exported, verified ``prior_grad.onnx`` (-log p(x) and d/dx in one ORT pass) as a bare
               ``OrtPriorGradient`` under the numpy MAP loop (``flowrt.solve.numpy_solver``) and numpy
               forward models (``flowrt.numeric``): image space; ORT's CPU provider, or its CUDA one
               for the prior alone (the forward models stay in numpy on the CPU). Nothing on this path
               imports torch.
  * ``auto``   ort on the CPU in image space when the model folder has ``prior_grad.onnx`` (the
               packaged prior does); torch otherwise (latent space, CUDA, a folder without the
               gradient graph); ort wherever torch is not installed (``pip install flowrt`` brings
               no torch; the torch engine comes with ``flowrt[torch]``). Why ort on the CPU: benchmarks/results/restore_speed.md; CUDA was not
               measured, so it stays torch.

``open_engine`` resolves the engine and the device together: the torch engine gets a torch.device
(``flowrt.device.resolve_device``), the ort engine the device its ORT session really uses ('cpu' or
'cuda'), found without torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple, Union

ENGINES = ("auto", "torch", "ort")

ModelDir = Optional[Union[str, Path]]


def choose_engine(engine: str, device_name: str = "auto", space: str = "image", model_dir: ModelDir = None) -> str:
    """The engine ``engine`` stands for ('auto' resolved, see the module docstring) for a restore on
    ``device_name`` (auto, cpu, cuda, cuda:N) in ``space`` with the prior in ``model_dir``. For
    ``--device auto`` torch is imported to ask for CUDA only where a GPU driver is loaded."""
    from flowrt.errors import missing_torch, torch_installed
    if engine == "ort" or (engine == "auto" and not torch_installed()):
        return _ort_or_why_not(space, model_dir) if engine == "auto" else "ort"
    if not torch_installed():
        raise missing_torch("--engine torch")
    if engine != "auto":
        return engine
    if space != "image" or device_name.startswith("cuda") or not has_gradient_graph(model_dir):
        return "torch"
    from flowrt.device import gpu_driver_loaded, resolve_device
    if device_name == "cpu" or not gpu_driver_loaded():
        return "ort"
    return "ort" if resolve_device(device_name).type == "cpu" else "torch"


def _ort_or_why_not(space: str, model_dir: ModelDir) -> str:
    """'ort' for an install without torch, or the one line saying why this restore needs torch."""
    from flowrt.errors import missing_torch
    if space != "image":
        raise missing_torch("--space latent (the torch engine)")
    if not has_gradient_graph(model_dir):
        raise missing_torch("a prior exported without its gradient graph (prior_grad.onnx)")
    return "ort"


def has_gradient_graph(model_dir: ModelDir) -> bool:
    """Whether the model folder's manifest lists prior_grad.onnx (False for a folder that cannot be
    read: the torch loader then reports what is wrong with it)."""
    from flowrt.errors import ModelError
    from flowrt.prior.folders import PRIOR_GRAD_ONNX, read_manifest, resolve_model_dir
    try:
        return PRIOR_GRAD_ONNX in read_manifest(resolve_model_dir(model_dir))["files"]
    except ModelError:
        return False


def ort_device_kind(device_name: str) -> str:
    """OrtPriorGradient's device for a --device name: 'auto' (CUDA where its provider loads), 'cpu'
    or 'cuda' (ORT's first GPU: ``cuda:N`` is not passed on)."""
    return "cuda" if device_name.startswith("cuda") else device_name


def open_engine(model_dir: ModelDir, engine: str = "auto", device_name: str = "auto",
                space: str = "image") -> Tuple[Any, Any]:
    """(device, prior) for a restore: the engine chosen (``choose_engine``), the device checked against
    this machine, the prior loaded from an exported folder (None: the packaged default). ort:
    (the ORT session's 'cpu' or 'cuda', an OrtPriorGradient); torch: (torch.device, FlowModel).
    InputError for a device this machine lacks, ModelError for a missing or tampered folder."""
    from flowrt.device import check_device_name
    check_device_name(device_name)
    if choose_engine(engine, device_name, space, model_dir) == "ort":
        from flowrt.prior.ort_gradient import OrtPriorGradient
        prior = OrtPriorGradient(model_dir, device=ort_device_kind(device_name))
        return prior.device, prior
    from flowrt.device import resolve_device
    from flowrt.prior.folders import load_torch_prior
    device = resolve_device(device_name)
    return device, load_torch_prior(model_dir)


def check_engine_request(engine: str, device_name: str = "auto") -> None:
    """What ``open_engine`` refuses before loading anything, for a restore that loads no prior (a
    denoiser's estimate alone): a bad --device, and --engine torch on an install without torch (an
    explicit request that cannot be honoured is refused, even where it would not have run)."""
    from flowrt.device import check_device_name
    from flowrt.errors import missing_torch, torch_installed
    check_device_name(device_name)
    if engine == "torch" and not torch_installed():
        raise missing_torch("--engine torch")


def load_prior(model_dir: ModelDir, engine: str = "auto", device=None):
    """The prior for ``engine`` from an exported folder (None: the packaged default); ``device`` a
    torch.device, a --device name or None (CPU). ort: an OrtPriorGradient (numpy in, numpy out)."""
    name = "cpu" if device is None else str(device)
    return open_engine(model_dir, engine, name)[1]


def engine_of(prior) -> str:
    """'ort' for the ort engine's prior (an ``OrtPriorGradient``, run by the numpy MAP loop), 'torch'
    for a torch module: the one place a prior's type says which loop runs it (``RestorationPlan.
    with_engine`` records the answer in the plan)."""
    from flowrt.prior.ort_gradient import OrtPriorGradient
    return "ort" if isinstance(prior, OrtPriorGradient) else "torch"
