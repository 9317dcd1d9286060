"""One writer per output: a run holds an exclusive lock on ``OUT`` from before its first write (the
tiled partial output and its resume state included) until ``OUT`` is in place.

The lock is ``flock`` on a small file ``.NAME.flowrt-lock`` beside ``OUT``. A second run on the same
output fails at once in one line (it does not wait: two runs asked for the same file, and the user
should choose). The kernel drops a ``flock`` when its process dies, however it dies, so a crash
leaves no lock to clean up: the lock file a dead run leaves behind is simply taken over, and
``--resume`` continues from that run's partial state. The lock file is removed on release; a run that
opened the old file just before that removal notices (the name no longer points at the file it
locked) and locks the new one instead.

Within one process the lock is re-entrant (a batch's image and the tiler below it take the same
lock), counted per output path. ``-`` (stdout) takes no lock.
"""
from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path
from typing import Dict, Iterator, Tuple, Union

from flowrt.errors import InputError, storage_error

__all__ = ["output_lock", "lock_path", "OutputBusy"]

_held: Dict[str, Tuple[int, int]] = {}   # absolute OUT -> (fd of its lock file, holders in this process)
_guard = threading.Lock()


class OutputBusy(InputError):
    """Another run (another process) is writing the same output now."""


def lock_path(out_path: Union[str, os.PathLike]) -> Path:
    """The lock file of ``out_path``: hidden, beside it, in the same folder."""
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.flowrt-lock")


def _owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""


def _acquire(out_path: Path) -> int:
    """An fd holding LOCK_EX on ``lock_path(out_path)``; OutputBusy if another process holds it."""
    import fcntl
    path = lock_path(out_path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise storage_error(path, exc, "create the lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _owner(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputBusy(f"{out_path}: another flowrt run{owner} is writing this output now; "
                                 "wait for it to finish or choose another output") from None
            raise storage_error(path, exc, "lock") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:   # removed by the previous holder between our open and our lock
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())   # a fresh fd writes at offset 0
            return fd
        os.close(fd)      # we locked a file that was released and unlinked: lock the current one


def _release(out_path: Path, fd: int) -> None:
    try:
        os.unlink(lock_path(out_path))   # still holding the lock: nobody else can own this name now
    except OSError:
        pass
    os.close(fd)


@contextlib.contextmanager
def output_lock(out_path: Union[str, os.PathLike]) -> Iterator[None]:
    """Hold the exclusive lock of ``out_path`` for the block (re-entrant in this process; no-op for
    '-'). Raises OutputBusy (an InputError, one line) when another process holds it."""
    if str(out_path) == "-":
        yield
        return
    key = os.path.abspath(out_path)
    with _guard:
        fd, count = _held.get(key, (-1, 0))
        if not count:
            fd = _acquire(Path(key))
        _held[key] = (fd, count + 1)
    try:
        yield
    finally:
        with _guard:
            fd, count = _held[key]
            if count == 1:
                del _held[key]
                _release(Path(key), fd)
            else:
                _held[key] = (fd, count - 1)
