"""Image bytes to stdout (``-o -``): one StorageError line for a closed stdout, a full device or a reader
that went away, never a success claimed for bytes nobody read."""
from __future__ import annotations

import errno
import io
import os
import stat
import sys

from flowrt.errors import StorageError, storage_error

__all__ = ["write_stdout"]


def write_stdout(payload: bytes) -> None:
    """PNG bytes to stdout; a closed stdout, closed pipe or full device is one StorageError, and
    stdout is pointed at /dev/null so that Python's own flush at exit has nothing left to fail on.

    Bytes a pipe accepted are not yet read: a reader that stops early (``| head -c 10``) would leave
    them unread and the restore would claim success. So on a pipe this waits until the reader has
    taken every byte, or fails when it went away first (``_wait_for_reader``)."""
    stdout = getattr(sys.stdout, "buffer", None)
    if stdout is None:   # started with stdout closed (>&-)
        raise StorageError("<stdout>: standard output is closed; give -o FILE or redirect it")
    try:
        stdout.write(payload)
        stdout.flush()
        _wait_for_reader(stdout)
    except OSError as exc:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):  # no real file descriptor (a test runner)
            pass
        raise storage_error("<stdout>", exc) from None


def _wait_for_reader(stream) -> None:
    """On a pipe: return once its reader has read everything written (FIONREAD on our end is 0);
    BrokenPipeError when the reader closed with bytes unread (poll reports POLLERR)."""
    import fcntl
    import select
    import struct
    import termios
    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    poller = select.poll()
    poller.register(fd, select.POLLERR)
    while True:
        try:
            unread = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return   # this kernel cannot tell: the write itself succeeded
        if unread == 0:
            return
        if any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(50)):
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
