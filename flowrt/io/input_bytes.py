"""The bytes of an input image: from a path, bytes or stdin, read in bounded memory.

A device (``/dev/zero``) is refused before reading; a regular file larger than any image under the
pixel limit could be (``flowrt.io.limits.max_input_bytes``) is refused by its size; a pipe or stdin is
copied in chunks into an unnamed temporary file (``tempfile.TemporaryFile``, in TMPDIR: no name to
leave behind, whatever ends the process) up to that cap, refused at its first megabyte when that is
no image's start, and then read from that file like a regular one, so a stream is never held twice.
Names in messages have control characters escaped (``display_name``).
"""
from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Optional, Tuple, Union

from flowrt.errors import InputError
from flowrt.io.limits import ENV_VAR, max_input_bytes

__all__ = ["read_source", "sniff_format", "display_name"]

Source = Union[str, os.PathLike, bytes, bytearray]


def read_source(src: Source) -> Tuple[bytes, str, Optional[str]]:
    """(file bytes, name for messages, resolved path or None). What is read is capped at
    ``max_input_bytes()`` before reading (a file's size) or while reading (a pipe, stdin), and a
    stream whose first bytes are no image is refused before the rest is read."""
    if isinstance(src, (bytes, bytearray)):
        return bytes(src), "<bytes>", None
    if str(src) == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:   # the process was started with stdin closed (<&-)
            raise InputError("<stdin>: standard input is closed; give IN as a file or pipe an image in")
        return _spooled(stdin, "<stdin>"), "<stdin>", None
    path = Path(src)
    try:
        info = path.stat()
    except OSError as exc:
        raise InputError(f"{display_name(path)}: {_missing_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{display_name(path)}: is a folder, not an image (to restore every image in it, "
                         "use flowrt batch FOLDER -o OUT_FOLDER)")
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) or stat.S_ISSOCK(info.st_mode):
        raise InputError(f"{display_name(path)}: is a device, not an image file")
    cap = max_input_bytes()
    if stat.S_ISREG(info.st_mode) and cap is not None and info.st_size > cap:
        raise InputError(f"{display_name(path)}: {info.st_size >> 20} MiB is more than an image under the pixel "
                         f"limit can take ({cap >> 20} MiB); --max-pixels N or {ENV_VAR} raises the limit")
    try:
        with open(path, "rb") as fh:
            read = _read_file if stat.S_ISREG(info.st_mode) else _spooled   # a FIFO streams as stdin does
            return read(fh, display_name(path)), display_name(path), str(path.resolve())
    except OSError as exc:
        raise InputError(f"{display_name(path)}: cannot read ({exc.strerror or exc})") from None


def _missing_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "no such file"
    return f"cannot read ({exc.strerror or exc})"


def display_name(path) -> str:
    """A path as messages print it: control characters (a newline in a name) escaped."""
    text = str(path)
    return text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")


def _read_file(fh, name: str) -> bytes:
    """A regular file's bytes, up to ``max_input_bytes()`` (its size was checked; it may have grown since)."""
    cap = max_input_bytes()
    data = fh.read() if cap is None else fh.read(cap + 1)
    if cap is not None and len(data) > cap:
        raise _over_cap(name, cap)
    return data


def _spooled(stream, name: str) -> bytes:
    """``stream`` (stdin, a pipe) copied in chunks into an unnamed temporary file, then read back from it.
    Refused when it passes ``max_input_bytes()`` or when its first bytes are no image (so
    `cat /dev/zero |` stops at once); the file goes with its handle, on every way out."""
    cap = max_input_bytes()
    with tempfile.TemporaryFile(prefix="flowrt-input-") as spool:
        total, head = 0, b""
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            if len(head) < 16:   # a pipe may hand over its first bytes in pieces
                head += chunk[:16]
                if len(head) >= 16:
                    sniff_format(head, name)
            total += len(chunk)
            if cap is not None and total > cap:
                raise _over_cap(name, cap)
            try:
                spool.write(chunk)
            except OSError as exc:   # the temporary folder is full or read-only
                raise InputError(f"{name}: cannot keep it in a temporary file in {tempfile.gettempdir()} "
                                 f"({exc.strerror or exc}); TMPDIR names another folder") from None
        spool.seek(0)
        return spool.read()


def _over_cap(name: str, cap: int) -> InputError:
    return InputError(f"{name}: more than {cap >> 20} MiB, more than an image under the pixel limit can "
                      f"take; --max-pixels N or {ENV_VAR} raises the limit")


def sniff_format(data: bytes, name: str) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    raise InputError(f"{name}: not a PNG, TIFF, JPEG, WebP or BMP image")
