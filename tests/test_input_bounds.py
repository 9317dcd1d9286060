"""Big images by design, bounded reads (issue 24, build point 2): --max-pixels / FLOWRT_MAX_PIXELS, a
device or an endless stream refused at once, memory needs checked before the work."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from flowrt.errors import InputError
from flowrt.io import limits


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", NO_COLOR="1", PYTHONWARNINGS="ignore", **extra)
    return env


def _cli(*args, stdin=None, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowrt.cli.main", *map(str, args)], stdin=stdin,
                          capture_output=True, text=True, timeout=60, env=_env(**env))


def test_dev_zero_is_refused_in_one_line_at_once(tmp_path):
    started = time.monotonic()
    result = _cli("restore", "/dev/zero", "-o", tmp_path / "z.png")
    assert result.returncode != 0 and result.stderr.strip() == "Error: /dev/zero: is a device, not an image file"
    assert time.monotonic() - started < 20   # python start-up included; the check itself is instant
    assert os.listdir(tmp_path) == []


def test_an_endless_stream_on_stdin_is_refused_at_its_first_bytes(tmp_path):
    zeros = subprocess.Popen(["cat", "/dev/zero"], stdout=subprocess.PIPE)
    try:
        result = _cli("restore", "-", "-o", tmp_path / "z.png", stdin=zeros.stdout)
    finally:
        zeros.kill()
        zeros.wait()
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "not a PNG" in lines[0]


def test_stdin_and_files_are_capped_before_they_are_read_whole(tmp_path, monkeypatch):
    from flowrt.io.image_file import read_image
    monkeypatch.setattr(limits, "_HEADROOM_BYTES", 1000)
    limits.set_max_pixels(100)   # cap: 100 * 8 + 1000 bytes
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match="MiB is more than an image under the pixel limit"):
        read_image(path)
    stream = subprocess.run([sys.executable, "-c", "import sys; from flowrt.io import limits; "
                             "limits._HEADROOM_BYTES = 1000; limits.set_max_pixels(100); "
                             "from flowrt.io.image_file import read_image; read_image('-')"],
                            stdin=open(path, "rb"), capture_output=True, text=True, env=_env())
    assert "more than an image under the pixel limit can take" in stream.stderr


def test_max_pixels_parses_and_the_environment_sets_it(monkeypatch):
    assert limits.parse_max_pixels("none") is None and limits.parse_max_pixels("1e9") == 10 ** 9
    for bad in ("-3", "abc", "1.5", "nan"):
        with pytest.raises(InputError, match="--max-pixels"):
            limits.parse_max_pixels(bad)
    monkeypatch.setenv("FLOWRT_MAX_PIXELS", "1234")
    assert limits.max_pixels() == limits.max_pixels(streamed=True) == 1234
    monkeypatch.setenv("FLOWRT_MAX_PIXELS", "none")
    assert limits.max_pixels() is None
    monkeypatch.delenv("FLOWRT_MAX_PIXELS")
    assert limits.max_pixels(streamed=True) == limits.STREAMED_MAX_PIXELS == 1 << 30
    assert limits.max_pixels() == Image.MAX_IMAGE_PIXELS


def test_a_whole_restore_the_machine_cannot_hold_is_refused_before_the_work(tmp_path, monkeypatch, invoke_flowrt,
                                                                          one_line_error):
    from flowrt.pipeline import resources
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(src)
    monkeypatch.setattr(resources, "available_memory", lambda: 1 << 20)   # 1 MiB free
    line = one_line_error(invoke_flowrt("restore", src, "-o", tmp_path / "out.png", "--sigma", "20",
                                        "--tile", "0"), "of memory")
    assert "in.png" in line and "--tile" in line
    assert sorted(os.listdir(tmp_path)) == ["in.png"]
    assert resources.memory_needed("whole", 1000, 2) > resources.memory_needed("tiled", 1000, 2) > 0


def test_a_tiled_output_that_cannot_fit_on_the_disk_is_refused(tmp_path, monkeypatch, invoke_flowrt, one_line_error):
    import shutil
    from collections import namedtuple
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(src)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(100, 100, 100))
    one_line_error(invoke_flowrt("restore", src, "-o", tmp_path / "out.png", "--sigma", "20", "--tile", "16",
                                 "--overlap", "4"), "of disk")


class _Stream:
    """A stdin whose reads hand out ``head`` and then ``fill`` bytes for ever, or until ``size`` bytes;
    ``interrupt_after`` bytes in, a read raises KeyboardInterrupt (Ctrl-C while copying)."""

    def __init__(self, head: bytes, fill: int = 0, size: float = float("inf"), interrupt_after: float = float("inf")):
        self.head, self.fill, self.size, self.interrupt_after, self.given = head, bytes([fill]), size, interrupt_after, 0

    def read(self, n: int) -> bytes:
        if self.given >= self.interrupt_after:
            raise KeyboardInterrupt
        n = int(min(n, self.size - self.given))
        chunk = (self.head[self.given:] + self.fill * n)[:n]
        self.given += len(chunk)
        return chunk


@pytest.fixture
def spools(tmp_path, monkeypatch):
    """Every temporary file stdin is copied into (TMPDIR is a fresh folder); the folder, to check it stays empty."""
    import tempfile
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made, original = [], tempfile.TemporaryFile

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    return made, scratch


def _stdin(monkeypatch, stream) -> None:
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": stream})())


@pytest.mark.parametrize("stream, error", [
    (_Stream(b""), "not a PNG"),                                             # /dev/zero
    (_Stream(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, fill=7), "more than 2 MiB"),  # endless, looks like an image
    (_Stream(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, size=3 << 20), "more than 2 MiB"),
    (_Stream(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, fill=1, interrupt_after=1 << 20), None),   # Ctrl-C mid-copy
])
def test_stdin_streams_to_a_temporary_file_refused_at_once_and_gone_on_every_way_out(monkeypatch, spools,
                                                                                      stream, error):
    from flowrt.io.input_bytes import read_source
    monkeypatch.setattr(limits, "_HEADROOM_BYTES", 2 << 20)
    limits.set_max_pixels(1000)   # cap: 2 MiB + 8000 bytes
    _stdin(monkeypatch, stream)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt if error is None else InputError) as caught:
        read_source("-")
    assert time.monotonic() - started < 1.0
    if error:
        assert error in str(caught.value) and "\n" not in str(caught.value)
    made, scratch = spools
    assert len(made) == 1 and made[0].closed and os.listdir(scratch) == []


def test_stdin_is_read_back_from_its_temporary_file_whole_and_held_once(monkeypatch, spools):
    import tracemalloc
    from flowrt.io.input_bytes import read_source
    head = b"\x89PNG\r\n\x1a\n" + b"\x01" * 8
    size = 24 << 20
    _stdin(monkeypatch, _Stream(head, fill=5, size=size))
    tracemalloc.start()
    try:
        data, name, path = read_source("-")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (name, path, len(data)) == ("<stdin>", None, size) and data[:16] == head and data[-1] == 5
    assert peak < size * 1.3   # chunks joined in memory held the stream twice
    made, scratch = spools
    assert len(made) == 1 and made[0].closed and os.listdir(scratch) == []
