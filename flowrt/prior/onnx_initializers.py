"""The initialisers and metadata of an ONNX file, read without the onnx package.

``import onnx`` costs about a second (it loads ml_dtypes), more than the flow denoiser's whole
table lookup on a small image; the runtime needs only a few named tensors and the metadata of
``denoiser.onnx``. ONNX files are protocol buffers, whose wire format is stable and small: a
message is a sequence of (field number, wire type, value) records. This reads ModelProto.graph
(7) -> GraphProto.initializer (5) -> TensorProto {dims 1, data_type 2, name 8, raw_data 9, and the
typed fields float_data 4, int32_data 5, int64_data 7, double_data 10}, and
ModelProto.metadata_props (14) -> {key 1, value 2}; every other field is skipped. Tensors stored as
external data are refused. ``tests/test_onnx_initializers.py`` checks it against onnx.load.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Iterator, Tuple

import numpy as np

from flowrt.errors import ModelError

# TensorProto.DataType -> numpy dtype (the types an initialiser of ours can have)
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
           9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of one message: an int for varints, a memoryview otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise _Malformed(f"wire type {wire}")
        if pos > len(buf):
            raise _Malformed("truncated field")
        yield number, wire, value


def _packed_varints(values) -> list:
    out = []
    for wire, value in values:
        if wire == 0:
            out.append(value)
            continue
        pos = 0
        while pos < len(value):
            v, pos = _varint(value, pos)
            out.append(v)
    return out


def _tensor(buf: memoryview) -> Tuple[str, np.ndarray]:
    dims, dtype, name, raw, typed = [], None, "", None, {}
    for number, wire, value in _fields(buf):
        if number == 1:
            dims.append((wire, value))
        elif number == 2:
            dtype = value
        elif number == 8:
            name = bytes(value).decode("utf-8")
        elif number == 9:
            raw = bytes(value)
        elif number in (4, 5, 7, 10):
            typed.setdefault(number, []).append((wire, value))
        elif number == 14 and value == 1:
            raise _Malformed(f"tensor {name or '?'} is stored as external data")
    if dtype not in _DTYPES:
        raise _Malformed(f"tensor {name} has data type {dtype}")
    shape = tuple(int(d) for d in _packed_varints(dims))
    np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    if raw is not None:
        array = np.frombuffer(raw, np_dtype)
    elif 4 in typed or 10 in typed:   # packed little-endian floats / doubles
        array = np.frombuffer(b"".join(bytes(v) for _, v in typed.get(4, typed.get(10, []))),
                              np.float32 if 4 in typed else np.float64).astype(np_dtype)
    elif 5 in typed:   # int32_data also carries float16 / bool / small ints as their integer bits
        ints = np.array(_packed_varints(typed[5]), np.uint64).astype(np.uint32)
        array = ints.astype(np.uint16).view(np.float16) if dtype == 10 else ints.astype(np.int64).astype(np_dtype)
    elif 7 in typed:
        array = np.array(_packed_varints(typed[7]), np.uint64).view(np.int64).astype(np_dtype)
    else:
        array = np.zeros(0, np_dtype)
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise _Malformed(f"tensor {name} holds {array.size} values for shape {shape}")
    return name, array.reshape(shape).astype(np_dtype.newbyteorder("="))


def read_initializers(path: Path, names: Iterable[str]) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """({name: array} for the initialisers of ``path`` named in ``names`` that it holds, {key: value}
    of its metadata). ModelError (one line naming ``path``) for a file that is not a readable ONNX
    graph."""
    wanted = set(names)
    try:
        data = memoryview(Path(path).read_bytes())
        found, meta = {}, {}
        for number, wire, value in _fields(data):
            if number == 7 and wire == 2:
                for g_number, g_wire, g_value in _fields(value):
                    if g_number == 5 and g_wire == 2:
                        name, array = _tensor(g_value)
                        if name in wanted:
                            found[name] = array
            elif number == 14 and wire == 2:
                entry = {n: bytes(v).decode("utf-8") for n, w, v in _fields(value) if w == 2}
                meta[entry.get(1, "")] = entry.get(2, "")
    except (_Malformed, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable ONNX graph ({exc})") from None
    return found, meta
