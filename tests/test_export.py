"""ONNX export and its verification, on a tiny randomised flow (2 levels, 1 step, width 8).

One export is shared by the module; tests that must tamper with a folder copy it first.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml

from flowrt.errors import InputError, ModelError
from flowrt.export import pipeline
from flowrt.export import verify as verify_mod
from flowrt.export.pipeline import ExportError, export_checkpoint, reverify
from flowrt.prior.folders import FORWARD_ONNX, INVERSE_ONNX, MANIFEST_NAME, MODEL_FILES, TORCH_WEIGHTS, sha256_file
from flowrt.train.checkpoint import FORMAT, atomic_save, load_model
from flowrt.train.config import ModelConfig, TrainConfig, to_dict
from flowrt.prior.flow import FlowModel


def write_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A flowrt checkpoint of a 2-level flow with ActNorm initialised and every weight perturbed."""
    cfg = TrainConfig(model=ModelConfig(levels=2, steps_per_level=1, width=8))
    model = FlowModel(cfg.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.initialize(torch.rand(4, 3, 12, 20, generator=gen))
        for p in model.parameters():  # zero-initialised couplings would make the test trivial
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    atomic_save({"format": FORMAT, "config": to_dict(cfg), "model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """(folder, report) of one verified export of the tiny checkpoint."""
    return export_checkpoint(checkpoint, tmp_path_factory.mktemp("export") / "prior")


@pytest.fixture
def copy_of(exported, tmp_path):
    """A private copy of the exported folder, safe to tamper with."""
    return Path(shutil.copytree(exported[0], tmp_path / "prior"))


def test_export_writes_every_file_and_a_manifest_that_describes_them(exported):
    folder, report = exported
    assert report.passed and report.providers[0] == "CPUExecutionProvider"
    manifest = yaml.safe_load((folder / MANIFEST_NAME).read_text())
    assert manifest["verification"]["passed"] is True
    assert manifest["size_rule"]["multiple"] == 4 and manifest["architecture"]["levels"] == 2
    assert manifest["train_config"]["model"]["width"] == 8 and manifest["precision"] == "float32"
    for name in MODEL_FILES:
        assert manifest["files"][name]["sha256"] == sha256_file(folder / name)
    assert set(manifest["versions"]) >= {"torch", "onnx", "onnxruntime", "flowrt"}
    names = {c["name"] for c in manifest["verification"]["checks"]}
    for needed in ("onnx checker forward.onnx", "round trip 256x384 random", "forward latent 96x160 natural",
                   "inverse image 256x384 normal latent", "jacobian 8x8 finite differences of graph",
                   "forward+inverse logdet 96x160 natural"):
        assert needed in names
    assert not list(folder.parent.glob(".*staging")), "the staging folder must not outlive the export"


def test_graphs_are_standard_onnx_with_dynamic_shapes_and_a_pinned_ir(exported):
    folder, _ = exported
    for name, first_input in ((FORWARD_ONNX, "x"), (INVERSE_ONNX, "u")):
        proto = onnx.load(str(folder / name))
        assert proto.ir_version <= 13  # onnxruntime 1.31 reads no newer IR
        assert {i.domain for i in proto.opset_import} <= {"", "ai.onnx"}
        assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node)
        assert not {"Inverse", "Det", "Trilu"} & {node.op_type for node in proto.graph.node}
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        assert proto.graph.input[0].name == first_input
        inferred = onnx.shape_inference.infer_shapes(proto).graph
        types = {v.name: v.type.tensor_type.elem_type for v in inferred.value_info}
        sums = [node for node in proto.graph.node if node.op_type == "ReduceSum"]
        assert sums and all(types[n.input[0]] == onnx.TensorProto.DOUBLE for n in sums), "log-dets sum in float64"
        assert [bool(d.dim_param) for d in dims] == [True, False, True, True]


def test_model_pt_is_a_checkpoint_holding_only_weights_and_config(exported, checkpoint):
    folder, _ = exported
    saved = torch.load(folder / TORCH_WEIGHTS, weights_only=True)
    assert set(saved) == {"format", "config", "model"}
    model, cfg = load_model(str(folder / TORCH_WEIGHTS))
    original, _ = load_model(str(checkpoint))
    x = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        assert torch.equal(model(x)[0], original(x)[0])


def test_reverify_passes_on_an_intact_folder(exported):
    report = reverify(exported[0])
    assert report.passed and len(report.checks) == len(exported[1].checks)


def test_tampered_graph_is_refused_by_reverify(copy_of):
    data = bytearray((copy_of / FORWARD_ONNX).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy_of / FORWARD_ONNX).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        reverify(copy_of)


def failing_verification(folder, model, precision="float32"):
    """What verify_folder returns when one figure misses its limit (and fast: no graphs are run)."""
    assert (Path(folder) / FORWARD_ONNX).is_file() and (Path(folder) / TORCH_WEIGHTS).is_file()
    return verify_mod.Report(precision, ["CPUExecutionProvider"], [
        verify_mod.Check("forward latent 96x160 natural", 1e-6, 1e-4, "relative"),
        verify_mod.Check("jacobian 8x8 finite differences of graph", 0.5, 1e-3, "nats/dim")])


def test_failed_verification_writes_nothing(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "verify_folder", failing_verification)
    with pytest.raises(ExportError, match="verification failed.*jacobian 8x8") as info:
        export_checkpoint(checkpoint, tmp_path / "out")
    assert info.value.report is not None and not info.value.report.passed
    assert list(tmp_path.iterdir()) == [], "neither the target nor a staging folder may remain"


def test_failed_reexport_keeps_the_previous_verified_folder(copy_of, checkpoint, monkeypatch):
    before = {name: sha256_file(copy_of / name) for name in MODEL_FILES + (MANIFEST_NAME,)}
    monkeypatch.setattr(pipeline, "verify_folder", failing_verification)
    with pytest.raises(ExportError):
        export_checkpoint(checkpoint, copy_of)
    assert {name: sha256_file(copy_of / name) for name in before} == before


def test_jacobian_checks_catch_a_wrong_logdet(checkpoint, tmp_path, monkeypatch):
    """Double every ActNorm log-det in torch and in the graph: only the Jacobian paths can tell."""
    from flowrt.export.onnx_export import export_graphs
    from flowrt.prior.layers import ActNorm

    honest = ActNorm.forward

    def doubled(self, x):
        z, logdet = honest(self, x)
        return z, 2 * logdet
    monkeypatch.setattr(ActNorm, "forward", doubled)
    model, _ = load_model(str(checkpoint))
    export_graphs(model, tmp_path)
    report = verify_mod.verify_folder(tmp_path, model)
    failed = {c.name for c in report.failures()}
    assert {"jacobian 8x8 finite differences of graph", "jacobian 8x8 torch float64 autograd"} <= failed
    assert "forward latent 96x160 natural" not in failed  # the latent itself is still right


def test_fp16_writes_float16_weights_with_float32_io_when_it_verifies(checkpoint, tmp_path, monkeypatch):
    loose = verify_mod.Tolerances(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # the wiring, not fp16's accuracy, is tested here
    monkeypatch.setitem(verify_mod.TOLERANCES, "float16", loose)
    folder, report = export_checkpoint(checkpoint, tmp_path / "half", fp16=True)
    assert report.precision == "float16"
    assert yaml.safe_load((folder / MANIFEST_NAME).read_text())["precision"] == "float16"
    proto = onnx.load(str(folder / FORWARD_ONNX))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer) or any(
        n.op_type == "Constant" and n.attribute[0].t.data_type == onnx.TensorProto.FLOAT16 for n in proto.graph.node)
    for value in list(proto.graph.input) + list(proto.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_natural_image_is_dequantised_and_inside_the_unit_interval():
    x = verify_mod.natural_image(2, 12, 20, seed=3)
    assert x.shape == (2, 3, 12, 20) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() < 1
    assert np.array_equal(x, verify_mod.natural_image(2, 12, 20, seed=3))


# ---------------------------------------------------------------- the command


def test_cli_exports_then_verifies(invoke_flowrt, checkpoint, tmp_path):
    result = invoke_flowrt("export", checkpoint, "-o", tmp_path / "p", "--no-gradients")  # default: test_own_prior
    assert result.exit_code == 0, result.output
    assert "exported" in result.output and "checks passed" in result.output
    result = invoke_flowrt("export", "--verify", tmp_path / "p", "-v")
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and "jacobian" in result.output


@pytest.mark.parametrize("content", [None, b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_cli_refuses_missing_or_corrupt_checkpoints(invoke_flowrt, tmp_path, content):
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    result = invoke_flowrt("export", path, "-o", tmp_path / "out")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "checkpoint" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_usage_errors(invoke_flowrt, checkpoint, exported, tmp_path):
    result = invoke_flowrt("export")
    assert result.exit_code != 0 and "either a CHECKPOINT" in result.output
    result = invoke_flowrt("export", "--verify", tmp_path / "nowhere")
    assert result.exit_code != 0 and "not found" in result.output
    inside = Path(shutil.copytree(exported[0], tmp_path / "copy"))
    result = invoke_flowrt("export", inside / TORCH_WEIGHTS, "-o", inside)
    assert result.exit_code != 0 and "overwrite the input" in result.output


def test_cli_failed_verification_prints_the_figures_and_exits_non_zero(invoke_flowrt, checkpoint, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(pipeline, "verify_folder", failing_verification)
    result = invoke_flowrt("export", checkpoint, "-o", tmp_path / "out")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "FAIL jacobian 8x8" in result.output and "nothing written" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_reverify_of_a_tampered_folder_fails(invoke_flowrt, copy_of):
    (copy_of / INVERSE_ONNX).write_bytes(b"\x08\x07" + (copy_of / INVERSE_ONNX).read_bytes()[2:])
    result = invoke_flowrt("export", "--verify", copy_of)
    assert result.exit_code != 0 and "sha256" in result.output


def test_exporting_into_an_existing_folder_replaces_the_prior(copy_of, tmp_path):
    other = write_tiny_checkpoint(tmp_path / "other.pt", seed=1)
    old = sha256_file(copy_of / FORWARD_ONNX)
    export_checkpoint(other, copy_of)
    manifest = yaml.safe_load((copy_of / MANIFEST_NAME).read_text())
    assert sha256_file(copy_of / FORWARD_ONNX) != old
    assert all(manifest["files"][name]["sha256"] == sha256_file(copy_of / name) for name in MODEL_FILES)
    assert manifest["source_checkpoint"] == str(other)


def test_unknown_exporter_is_an_input_error(checkpoint, tmp_path):
    with pytest.raises(InputError, match="exporter"):
        export_checkpoint(checkpoint, tmp_path / "x", exporter="tflite")


def test_gradient_graphs_are_verified_hashed_and_dynamic(tiny_grad_prior):
    """export_checkpoint(gradients=True): both gradient graphs checked against float64 autograd at
    two sizes (one non-square), listed with their sha256, dynamic in B, H, W, IR pinned."""
    from flowrt.prior.folders import GRADIENT_FILES, listed_files

    manifest = yaml.safe_load((tiny_grad_prior / MANIFEST_NAME).read_text())
    assert listed_files(manifest) == MODEL_FILES + GRADIENT_FILES
    for name in GRADIENT_FILES:
        assert manifest["files"][name]["sha256"] == sha256_file(tiny_grad_prior / name)
        assert name in manifest["graphs"]
        proto = onnx.load(str(tiny_grad_prior / name))
        assert proto.ir_version <= 13 and all(node.domain in ("", "ai.onnx") for node in proto.graph.node)
        for value in list(proto.graph.input) + list(proto.graph.output):
            dims = value.type.tensor_type.shape.dim
            assert bool(dims[0].dim_param), f"{name} {value.name}: batch must be dynamic"
            if len(dims) == 4:
                assert [bool(d.dim_param) for d in dims] == [True, False, True, True]
    checks = {c["name"]: c for c in manifest["verification"]["checks"]}
    for needed in ("onnx checker prior_grad.onnx", "prior_grad grad 48x80 natural", "prior_grad nll 64x64 random",
                   "generator_vjp vjp 48x80 natural latent", "generator_vjp e_prior_grad 64x64 normal latent"):
        assert checks[needed]["passed"], needed
    assert checks["prior_grad grad 48x80 natural"]["limit"] <= 1e-4


def test_tampered_gradient_graph_is_refused(tiny_grad_prior, tmp_path):
    from flowrt.prior.folders import PRIOR_GRAD_ONNX
    from flowrt.prior.ort_gradient import OrtPriorGradient

    folder = Path(shutil.copytree(tiny_grad_prior, tmp_path / "prior"))
    data = bytearray((folder / PRIOR_GRAD_ONNX).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / PRIOR_GRAD_ONNX).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        OrtPriorGradient(folder, device="cpu", threads=1)
    with pytest.raises(ModelError, match="sha256"):
        reverify(folder)
