"""The bytes of an input image: from a path, bytes or stdin, read in bounded memory.

A device (``/dev/zero``) is refused before reading; a regular file larger than any image under the
pixel limit could be (``flowrt.io.limits.max_input_bytes``) is refused by its size; a pipe or stdin is
read in chunks up to that cap, and refused at its first megabyte when that is no image's start. Names
in messages have control characters escaped (``display_name``).
"""
from __future__ import annotations

import errno
import os
import stat
import sys
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
        return _read_capped(stdin, "<stdin>"), "<stdin>", None
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
            return _read_capped(fh, display_name(path)), display_name(path), str(path.resolve())
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


def _read_capped(stream, name: str) -> bytes:
    """Read ``stream`` to its end in chunks, refusing it once it passes ``max_input_bytes()`` or
    when its first bytes are no image (so `cat /dev/zero |` stops at once)."""
    cap = max_input_bytes()
    chunks, total = [], 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        if not total and len(chunk) >= 16:
            sniff_format(chunk, name)
        chunks.append(chunk)
        total += len(chunk)
        if cap is not None and total > cap:
            raise InputError(f"{name}: more than {cap >> 20} MiB, more than an image under the pixel limit can "
                             f"take; --max-pixels N or {ENV_VAR} raises the limit")
    return b"".join(chunks)


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
