"""JPEG file structure: marker segments, quantisation tables, the frame header, scan boundaries.

Shared by the header reader (flowrt.io.jpeg_coefficients) and the coefficient decoder (flowrt.io.jpeg_scan).
Corrupt data raises InputError; valid codings flowrt does not decode raise ``Unsupported``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from flowrt.errors import InputError


def _zigzag() -> np.ndarray:
    """ZIGZAG[k] = natural (row-major) index of the k-th coefficient in zigzag order."""
    order = []
    for s in range(15):
        cells = [(i, s - i) for i in range(8) if 0 <= s - i < 8]
        order += cells[::-1] if s % 2 == 0 else cells
    return np.array([8 * i + j for i, j in order], dtype=np.int64)


ZIGZAG = _zigzag()
SOF_HUFFMAN = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive
SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class Unsupported(Exception):
    """A valid JPEG this reader does not decode (it falls back to re-encoding)."""


@dataclass(frozen=True)
class Component:
    ident: int
    h: int  # horizontal sampling factor
    v: int  # vertical sampling factor
    tq: int  # quantisation table slot


def corrupt(why: str) -> InputError:
    return InputError(f"corrupt JPEG data: {why}")


def entropy_end(data: bytes, pos: int) -> int:
    """Position of the first marker after entropy-coded data (restart markers are skipped)."""
    while True:
        j = data.find(b"\xff", pos)
        if j < 0 or j + 1 >= len(data):
            raise corrupt("entropy-coded data runs past the end of the file")
        nxt = data[j + 1]
        if nxt == 0 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            pos = j + (1 if nxt == 0xFF else 2)
            continue
        return j


def parse_dqt(payload: bytes, tables: Dict[int, np.ndarray]) -> None:
    i = 0
    while i < len(payload):
        precision, slot = payload[i] >> 4, payload[i] & 15
        size = 128 if precision else 64
        raw = payload[i + 1:i + 1 + size]
        if len(raw) != size:
            raise corrupt("short quantisation table")
        values = np.frombuffer(raw, ">u2" if precision else "u1").astype(np.int32)
        natural = np.empty(64, np.int32)
        natural[ZIGZAG] = values
        if natural.min() < 1:
            raise corrupt("zero in a quantisation table")
        tables[slot] = natural.reshape(8, 8)
        i += 1 + size


def parse_sof(payload: bytes) -> Tuple[int, int, int, Tuple[Component, ...]]:
    if len(payload) < 6:
        raise corrupt("short frame header")
    precision = payload[0]
    height, width = int.from_bytes(payload[1:3], "big"), int.from_bytes(payload[3:5], "big")
    n = payload[5]
    if len(payload) < 6 + 3 * n or n == 0:
        raise corrupt("short frame header")
    comps = tuple(Component(payload[6 + 3 * c], payload[7 + 3 * c] >> 4, payload[7 + 3 * c] & 15,
                            payload[8 + 3 * c]) for c in range(n))
    if any(c.h not in (1, 2, 3, 4) or c.v not in (1, 2, 3, 4) for c in comps):
        raise corrupt("bad sampling factors")
    return precision, height, width, comps


def next_segment(data: bytes, pos: int):
    """(marker, payload, end) of the marker segment at data[pos:] (fill bytes skipped)."""
    while pos + 1 < len(data) and data[pos] == 0xFF and data[pos + 1] == 0xFF:
        pos += 1
    if pos + 2 > len(data) or data[pos] != 0xFF:
        raise corrupt("truncated or malformed marker segment")
    marker = data[pos + 1]
    if marker == 0xD9 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
        return marker, b"", pos + 2
    length = int.from_bytes(data[pos + 2:pos + 4], "big")
    if length < 2 or pos + 2 + length > len(data):
        raise corrupt("truncated marker segment")
    return marker, data[pos + 4:pos + 2 + length], pos + 2 + length


def restart_segments(data: bytes, start: int, end: int) -> List[bytes]:
    """Split data[start:end] at restart markers and undo byte stuffing."""
    raw = data[start:end]
    pieces, i, seg_start = [], 0, 0
    while True:
        j = raw.find(b"\xff", i)
        if j < 0 or j + 1 >= len(raw):
            break
        if 0xD0 <= raw[j + 1] <= 0xD7:
            pieces.append(raw[seg_start:j])
            seg_start = j + 2
        i = j + 2 if raw[j + 1] != 0xFF else j + 1
    pieces.append(raw[seg_start:])
    return [p.replace(b"\xff\x00", b"\xff") for p in pieces]
