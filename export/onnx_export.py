"""Write a frozen FlowModel as two ONNX graphs: forward (x -> u, logdet, log_prob) and inverse.

Both graphs take dynamic batch, height and width, use only the standard ONNX domain, and carry
the 1x1-conv weights and their inverses as constants computed in float64 (``model.freeze()``),
so no matrix inverse, slogdet or diag op is needed. The IR version is pinned to the oldest one
that holds the opset, so older runtimes (onnxruntime 1.31 reads IR <= 13) load the files, and
the log-det sums run in float64 (ORT's float32 sums drift by ~1e-4 bits/dim on a whole photo).

Exporters: the TorchScript tracer (``torch.onnx.export(dynamo=False)``, the default: it writes
opset 17 in about a second, and the model has no data-dependent branch to trip it) or the
torch.export-based one ("dynamo", about 10x slower to export, same ORT speed).
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Dict

import onnx
import torch
from torch import nn

from flowrt.prior.flow import FlowModel, log_normal

DEFAULT_OPSET = 17
MAX_IR_VERSION = 13      # onnxruntime 1.31.1 refuses IR 14, which onnx 1.23 writes by default
EXPORTERS = ("torchscript", "dynamo")
FORWARD_NAMES = (["x"], ["u", "logdet", "log_prob"])
INVERSE_NAMES = (["u"], ["x", "logdet"])


class ForwardGraph(nn.Module):
    """x (B,3,H,W) float32 -> u, log|det du/dx| (B,), log p(x) (B,) nats; all outputs float32.

    With a float16 model the input is cast down and the outputs up, so callers always see
    float32; log p is summed in float64 from the float32-cast latent.
    """

    def __init__(self, model: FlowModel):
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype

    def forward(self, x: torch.Tensor):
        u, logdet = self.model(x.to(self.dtype))
        u, logdet = u.float(), logdet.float()
        # The Gaussian term sums ~1e6 squares: float64 keeps that sum exact to well below 1e-6 nats/dim.
        log_prob = (log_normal(u.double()) + logdet.double()).float()
        return u, logdet, log_prob


class InverseGraph(nn.Module):
    """u (B,3,H,W) float32 -> x (B,3,H,W), log|det dx/du| (B,); outputs float32."""

    def __init__(self, model: FlowModel):
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype

    def forward(self, u: torch.Tensor):
        x, logdet = self.model.inverse(u.to(self.dtype))
        return x.float(), logdet.float()


def ir_version_for(opset: int) -> int:
    """The oldest ONNX IR version that can hold ``opset`` of the default domain."""
    for _, ir_version, ai_onnx, *_ in onnx.helper.VERSION_TABLE:
        if ai_onnx >= opset:
            return int(ir_version)
    raise ValueError(f"onnx {onnx.__version__} does not know opset {opset}")


def export_graph(module: nn.Module, example: torch.Tensor, path: Path, names, opset: int, exporter: str) -> None:
    """Export ``module`` to ``path`` with dynamic B, H, W on every 4-D input and output."""
    inputs, outputs = names
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, tracer warnings
        if exporter == "torchscript":
            axes = {n: {0: "batch", 2: "height", 3: "width"} for n in inputs + outputs[:1]}
            axes.update({n: {0: "batch"} for n in outputs[1:]})
            torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=inputs, output_names=outputs, dynamic_axes=axes)
        elif exporter == "dynamo":
            auto = torch.export.Dim.AUTO
            torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=opset,
                              input_names=inputs, output_names=outputs, external_data=False, verbose=False,
                              dynamic_shapes={inputs[0]: {0: auto, 2: auto, 3: auto}})
        else:
            raise ValueError(f"exporter must be one of {EXPORTERS}, not {exporter!r}")
    finalize_graph(path)


def finalize_graph(path: Path) -> None:
    """Rewrite ``path``: log-det sums accumulated in float64, IR version pinned to the opset's oldest."""
    proto = onnx.load(str(path))
    accumulate_sums_in_float64(proto)
    actual = max(int(i.version) for i in proto.opset_import if i.domain in ("", "ai.onnx"))
    proto.ir_version = min(ir_version_for(actual), MAX_IR_VERSION)
    proto.producer_name = "flowrt"
    onnx.save(proto, str(path))


def accumulate_sums_in_float64(proto: onnx.ModelProto) -> int:
    """Wrap every float ReduceSum in Casts to float64 and back; returns how many were wrapped.

    The graph's ReduceSums are the log-det sums over (C, H, W). ORT sums float32 in float32 and
    on a 640x1024 photo that cost ~1e-4 bits/dim against torch (whose summation is pairwise);
    in float64 the sums are exact to ~1e-7 for a few percent of the pass's time.
    """
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(onnx.shape_inference.infer_shapes(proto).graph.value_info)
             + list(proto.graph.input) + list(proto.graph.output)}
    types.update({t.name: t.data_type for t in proto.graph.initializer})  # ActNorm's sum(log_scale)
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    nodes, wrapped = [], 0
    for node in proto.graph.node:
        elem = types.get(node.input[0]) if node.op_type == "ReduceSum" else None
        if elem not in floats:
            nodes.append(node)
            continue
        wide_in, wide_out, out = f"{node.input[0]}__f64_{wrapped}", f"{node.output[0]}__f64", node.output[0]
        nodes.append(onnx.helper.make_node("Cast", [node.input[0]], [wide_in], to=onnx.TensorProto.DOUBLE,
                                           name=f"{node.name}_to_f64"))
        node.input[0], node.output[0] = wide_in, wide_out
        nodes.append(node)
        nodes.append(onnx.helper.make_node("Cast", [wide_out], [out], to=elem, name=f"{node.name}_from_f64"))
        wrapped += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return wrapped


def export_graphs(model: FlowModel, folder: Path, opset: int = DEFAULT_OPSET, fp16: bool = False,
                  exporter: str = "torchscript") -> Dict[str, Path]:
    """Write forward.onnx and inverse.onnx for ``model`` into ``folder``; returns name -> path.

    ``model`` is copied, frozen and (with ``fp16``) cast to float16 weights; the caller's model
    is left as it was. The traced example is batch 2 (a batch of 1 would let the dynamo exporter
    specialise the batch axis) at the smallest non-square size the size rule allows.
    """
    from flowrt.prior.folders import FORWARD_ONNX, INVERSE_ONNX

    frozen = copy.deepcopy(model).float().eval().freeze()  # W, W^-1 from float64
    if fp16:
        frozen = frozen.half()  # casts the frozen W and W^-1 too: computed in float64, then rounded
    m = model.multiple
    example = torch.rand(2, model.cfg.channels, 2 * m, 3 * m, generator=torch.Generator().manual_seed(0))
    folder = Path(folder)
    paths = {FORWARD_ONNX: folder / FORWARD_ONNX, INVERSE_ONNX: folder / INVERSE_ONNX}
    export_graph(ForwardGraph(frozen), example, paths[FORWARD_ONNX], FORWARD_NAMES, opset, exporter)
    with torch.no_grad():
        latent = ForwardGraph(frozen)(example)[0]
    export_graph(InverseGraph(frozen), latent, paths[INVERSE_ONNX], INVERSE_NAMES, opset, exporter)
    return paths
