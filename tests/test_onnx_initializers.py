"""The onnx-free reader of initialisers and metadata against onnx.load."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from flowrt.errors import ModelError  # noqa: E402
from flowrt.prior.onnx_initializers import read_initializers  # noqa: E402


def _graph(tmp_path, tensors, raw: bool):
    inits = []
    for name, array in tensors.items():
        if raw:
            inits.append(numpy_helper.from_array(array, name))
        else:   # the typed fields (float_data, int32_data, int64_data, double_data) instead of raw bytes
            dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
            values = array.view(np.uint16).ravel().tolist() if array.dtype == np.float16 else array.ravel().tolist()
            inits.append(helper.make_tensor(name, dtype, array.shape, values, raw=False))
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], initializer=inits)
    model = helper.make_model(graph)
    helper.set_model_props(model, {"axes": "1.0,2.5", "fit": "{\"a\": 1}"})
    path = tmp_path / ("raw.onnx" if raw else "typed.onnx")
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("raw", [True, False])
def test_reads_what_onnx_reads(tmp_path, raw):
    rng = np.random.default_rng(0)
    tensors = {"f32": rng.normal(size=(3, 4)).astype(np.float32), "f16": rng.normal(size=(2, 5, 7)).astype(np.float16),
               "i64": rng.integers(-2 ** 40, 2 ** 40, (6,)), "i32": rng.integers(-9, 9, (2, 2)).astype(np.int32),
               "f64": rng.normal(size=(4,)), "empty": np.zeros((0, 3), np.float32)}
    path = _graph(tmp_path, tensors, raw)
    found, meta = read_initializers(path, list(tensors) + ["absent"])
    model = onnx.load(str(path))
    assert meta == {p.key: p.value for p in model.metadata_props}
    assert set(found) == set(tensors)
    for t in model.graph.initializer:
        expected = numpy_helper.to_array(t)
        assert found[t.name].dtype == expected.dtype and np.array_equal(found[t.name], expected), t.name


def test_the_packaged_denoiser_graph():
    from flowrt.prior.folders import DENOISER_ONNX, open_model_dir
    folder, _ = open_model_dir(None, [DENOISER_ONNX])
    found, meta = read_initializers(folder / DENOISER_ONNX, ["gain", "weight", "slots"])
    model = onnx.load(str(folder / DENOISER_ONNX))
    for t in model.graph.initializer:
        assert np.array_equal(found[t.name], numpy_helper.to_array(t))
    assert meta["axes"] == {p.key: p.value for p in model.metadata_props}["axes"]


@pytest.mark.parametrize("payload", [b"\x0a\xff\xff\xff", b"\x3a\x05\x2a\x03\x42", b"\x07\x00", b"not onnx at all"])
def test_damaged_files_are_one_line(tmp_path, payload):
    path = tmp_path / "bad.onnx"
    path.write_bytes(payload)
    with pytest.raises(ModelError, match="not a readable ONNX graph"):
        read_initializers(path, ["gain"])
