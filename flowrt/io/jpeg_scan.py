"""Reading the quantised DCT coefficients a JPEG file holds, without decoding pixels.

Handles Huffman-coded sequential (baseline, extended) and progressive JPEGs with 8-bit samples
and any restart interval, following ITU-T T.81 (sections F.2 and G.1.2). Anything else raises
``Unsupported`` so the caller can fall back. Corrupt data raises InputError.

Coefficient arrays are int32 of shape (blocks_y, blocks_x, 8, 8) in natural (row-major)
frequency order, one per component, covering ceil(component side / 8) blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from flowrt.io.jpeg_markers import (SOF_HUFFMAN, SOF_OTHER, ZIGZAG, Unsupported, corrupt, entropy_end, next_segment,
                          parse_sof, restart_segments)


# ---------------------------------------------------------------- entropy decoding


def _huffman_lut(payload: bytes, i: int):
    """One DHT table at payload[i:] -> (slot key, (symbols, lengths) 16-bit lookup lists, next i)."""
    key = (payload[i] >> 4, payload[i] & 15)
    counts = payload[i + 1:i + 17]
    symbols = payload[i + 17:i + 17 + sum(counts)]
    if len(counts) != 16 or len(symbols) != sum(counts):
        raise corrupt("short Huffman table")
    sym = np.zeros(65536, np.int32)
    length = np.zeros(65536, np.int32)
    code, k = 0, 0
    for bits in range(1, 17):
        for _ in range(counts[bits - 1]):
            if code >= 1 << bits:
                raise corrupt("bad Huffman table")
            lo, hi = code << (16 - bits), (code + 1) << (16 - bits)
            sym[lo:hi], length[lo:hi] = symbols[k], bits
            code, k = code + 1, k + 1
        code <<= 1
    return key, (sym.tolist(), length.tolist()), i + 17 + len(symbols)


class _Bits:
    """MSB-first bit reader over one unstuffed restart segment."""

    def __init__(self, segment: bytes):
        b = np.frombuffer(segment + b"\x00" * 8, np.uint8).astype(np.int64)
        self.words = ((b[:-3] << 24) | (b[1:-2] << 16) | (b[2:-1] << 8) | b[3:]).tolist()
        self.pos = 0

    def huff(self, lut) -> int:
        pos = self.pos
        try:
            peek = (self.words[pos >> 3] >> (16 - (pos & 7))) & 0xFFFF
        except IndexError:
            raise corrupt("entropy-coded data ends early") from None
        n = lut[1][peek]
        if n == 0:
            raise corrupt("invalid Huffman code")
        self.pos = pos + n
        return lut[0][peek]

    def bits(self, n: int) -> int:
        if n == 0:
            return 0
        pos = self.pos
        try:
            value = (self.words[pos >> 3] >> (32 - (pos & 7) - n)) & ((1 << n) - 1)
        except IndexError:
            raise corrupt("entropy-coded data ends early") from None
        self.pos = pos + n
        return value

    def signed(self, n: int) -> int:
        """Receive n bits and extend them to a signed value (JPEG's EXTEND)."""
        v = self.bits(n)
        return v if n == 0 or v >= 1 << (n - 1) else v - (1 << n) + 1


@dataclass
class _Scan:
    comps: List[int]  # frame component indices in this scan
    dc: List[tuple]
    ac: List[tuple]
    ss: int
    se: int
    ah: int
    al: int


class _Decoder:
    """Holds the frame's coefficient store (flat zigzag lists) while scans fill it in."""

    def __init__(self, frame, progressive: bool):
        _, self.height, self.width, self.comps = frame
        if frame[0] != 8:
            raise Unsupported("only 8-bit samples")
        if self.width == 0 or self.height == 0:
            raise Unsupported("height given by a DNL marker")
        self.progressive = progressive
        self.hmax = max(c.h for c in self.comps)
        self.vmax = max(c.v for c in self.comps)
        self.mcux = math.ceil(self.width / (8 * self.hmax))
        self.mcuy = math.ceil(self.height / (8 * self.vmax))
        self.alloc = [(self.mcuy * c.v, self.mcux * c.h) for c in self.comps]
        self.store = [[0] * (by * bx * 64) for by, bx in self.alloc]

    def comp_blocks(self, c: int) -> Tuple[int, int]:
        """Blocks (down, across) that hold image data for component c."""
        comp = self.comps[c]
        w = math.ceil(self.width * comp.h / self.hmax)
        h = math.ceil(self.height * comp.v / self.vmax)
        return math.ceil(h / 8), math.ceil(w / 8)

    def units(self, scan: _Scan) -> List[List[Tuple[int, int]]]:
        """MCUs in coding order, each a list of (component, flat block offset)."""
        if len(scan.comps) == 1:
            c = scan.comps[0]
            by_n, bx_n = self.comp_blocks(c)
            stride = self.alloc[c][1]
            return [[(c, (by * stride + bx) * 64)] for by in range(by_n) for bx in range(bx_n)]
        mcus = []
        for my in range(self.mcuy):
            for mx in range(self.mcux):
                mcu = []
                for c in scan.comps:
                    comp, stride = self.comps[c], self.alloc[c][1]
                    for by in range(comp.v):
                        for bx in range(comp.h):
                            mcu.append((c, ((my * comp.v + by) * stride + mx * comp.h + bx) * 64))
                mcus.append(mcu)
        return mcus

    def decode_scan(self, scan: _Scan, segments: List[bytes], restart: int) -> None:
        block_fn = self._block_function(scan)
        units = self.units(scan)
        per_segment = restart if restart else len(units)
        if len(segments) < math.ceil(len(units) / per_segment):
            raise corrupt("entropy-coded data ends early")
        slot = {c: i for i, c in enumerate(scan.comps)}
        for seg_index in range(0, len(units), per_segment):
            bits = _Bits(segments[seg_index // per_segment])
            state = {"pred": [0] * len(self.comps), "eobrun": 0}
            for mcu in units[seg_index:seg_index + per_segment]:
                for c, base in mcu:
                    i = slot[c]
                    block_fn(bits, scan, scan.dc[i], scan.ac[i], self.store[c], base, c, state)

    def _block_function(self, scan: _Scan):
        if not self.progressive:
            if scan.ss != 0 or scan.se != 63 or scan.ah or scan.al:
                raise corrupt("sequential scan with spectral selection")
            return _block_sequential
        if scan.ss == 0:
            if scan.se != 0:
                raise corrupt("progressive DC scan holds AC coefficients")
            return _block_dc_first if scan.ah == 0 else _block_dc_refine
        if len(scan.comps) != 1 or scan.se > 63 or scan.ss > scan.se:
            raise corrupt("bad progressive AC scan")
        return _block_ac_first if scan.ah == 0 else _block_ac_refine

    def result(self) -> List[np.ndarray]:
        out = []
        for c, (by, bx) in enumerate(self.alloc):
            zz = np.asarray(self.store[c], np.int32).reshape(by, bx, 64)
            natural = np.empty_like(zz)
            natural[..., ZIGZAG] = zz
            nby, nbx = self.comp_blocks(c)
            out.append(np.ascontiguousarray(natural[:nby, :nbx].reshape(nby, nbx, 8, 8)))
        return out


def _block_sequential(bits, scan, dc, ac, store, base, c, state):
    s = bits.huff(dc)
    state["pred"][c] += bits.signed(s)
    store[base] = state["pred"][c]
    k = 1
    while k < 64:
        rs = bits.huff(ac)
        r, s = rs >> 4, rs & 15
        if s:
            k += r
            if k > 63:
                raise corrupt("coefficient index past 63")
            store[base + k] = bits.signed(s)
        elif r != 15:
            break
        else:
            k += 15
        k += 1


def _block_dc_first(bits, scan, dc, ac, store, base, c, state):
    s = bits.huff(dc)
    state["pred"][c] += bits.signed(s)
    store[base] = state["pred"][c] << scan.al


def _block_dc_refine(bits, scan, dc, ac, store, base, c, state):
    if bits.bits(1):
        store[base] |= 1 << scan.al


def _block_ac_first(bits, scan, dc, ac, store, base, c, state):
    if state["eobrun"] > 0:
        state["eobrun"] -= 1
        return
    k = scan.ss
    while k <= scan.se:
        rs = bits.huff(ac)
        r, s = rs >> 4, rs & 15
        if s:
            k += r
            if k > 63:
                raise corrupt("coefficient index past 63")
            store[base + k] = bits.signed(s) << scan.al
        elif r == 15:
            k += 15
        else:
            state["eobrun"] = (1 << r) + bits.bits(r) - 1
            break
        k += 1


def _refine_nonzero(bits, store, at: int, p1: int) -> None:
    """A correction bit for a coefficient that is already non-zero (sign-magnitude refinement)."""
    if bits.bits(1) and store[at] & p1 == 0:
        store[at] += p1 if store[at] >= 0 else -p1


def _block_ac_refine(bits, scan, dc, ac, store, base, c, state):
    p1 = 1 << scan.al
    k = scan.ss
    if state["eobrun"] == 0:
        while k <= scan.se:
            rs = bits.huff(ac)
            r, s = rs >> 4, rs & 15
            if s:
                if s != 1:
                    raise corrupt("bad refinement coefficient")
                s = p1 if bits.bits(1) else -p1
            elif r != 15:
                state["eobrun"] = (1 << r) + bits.bits(r)
                break
            while k <= scan.se:  # skip r zero-history coefficients, refining non-zero ones
                if store[base + k] != 0:
                    _refine_nonzero(bits, store, base + k, p1)
                else:
                    r -= 1
                    if r < 0:
                        break
                k += 1
            if s:
                if k > 63:
                    raise corrupt("coefficient index past 63")
                store[base + k] = s
            k += 1
    if state["eobrun"] > 0:
        while k <= scan.se:
            if store[base + k] != 0:
                _refine_nonzero(bits, store, base + k, p1)
            k += 1
        state["eobrun"] -= 1


def _parse_sos(payload: bytes, decoder: _Decoder, huff: Dict[tuple, tuple]) -> _Scan:
    n = payload[0] if payload else 0
    if n == 0 or len(payload) < 4 + 2 * n:
        raise corrupt("short scan header")
    ids = {comp.ident: i for i, comp in enumerate(decoder.comps)}
    comps, dc, ac = [], [], []
    for j in range(n):
        cid, tables = payload[1 + 2 * j], payload[2 + 2 * j]
        if cid not in ids:
            raise corrupt("scan names an unknown component")
        comps.append(ids[cid])
        dc.append(huff.get((0, tables >> 4)))
        ac.append(huff.get((1, tables & 15)))
    ss, se, a = payload[1 + 2 * n], payload[2 + 2 * n], payload[3 + 2 * n]
    scan = _Scan(comps, dc, ac, ss, se, a >> 4, a & 15)
    needs_dc = ss == 0 and scan.ah == 0
    needs_ac = se > 0 and not (decoder.progressive and ss == 0)
    if (needs_dc and None in dc) or (needs_ac and None in ac):
        raise corrupt("scan uses an undefined Huffman table")
    return scan


def decode_coefficients(data: bytes) -> List[np.ndarray]:
    """Quantised DCT coefficients of every component, read from the entropy-coded data.

    Returns int32 arrays (blocks_y, blocks_x, 8, 8) in natural order. Raises InputError for
    corrupt data and Unsupported for codings this reader does not handle.
    """
    huff: Dict[tuple, tuple] = {}
    decoder: Optional[_Decoder] = None
    restart = 0
    pos = 2
    while True:
        marker, payload, end = next_segment(data, pos)
        if marker == 0xD9:
            break
        if marker in SOF_OTHER:
            raise Unsupported("arithmetic-coded or lossless JPEG")
        if marker in SOF_HUFFMAN:
            decoder = _Decoder(parse_sof(payload), marker == 0xC2)
        elif marker == 0xC4:
            i = 0
            while i < len(payload):
                key, lut, i = _huffman_lut(payload, i)
                huff[key] = lut
        elif marker == 0xDD:
            restart = int.from_bytes(payload[:2], "big")
        elif marker == 0xDA:
            if decoder is None:
                raise corrupt("scan before the frame header")
            scan = _parse_sos(payload, decoder, huff)
            stop = entropy_end(data, end)
            decoder.decode_scan(scan, restart_segments(data, end, stop), restart)
            end = stop
        pos = end
    if decoder is None:
        raise corrupt("no frame header")
    return decoder.result()


