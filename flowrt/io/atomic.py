"""The one atomic writer: every file flowrt writes appears whole or not at all, and a crash leaves
nothing a later run does not recognise and remove.

The bytes go to a temporary ``.NAME.flowrt-PID-XXXXXXXX.tmp`` in the destination's folder (same file
system, so the rename is atomic), are flushed and fsync'ed, get normal permissions, and are renamed
onto the destination; on any failure the temporary file is removed and the destination is untouched.
A process killed mid-write (SIGKILL, power loss) cannot remove its temporary file, so the name carries
the writer's PID: the first time a process writes into a folder it deletes the ``.flowrt-PID-``
temporaries of processes that no longer run (``remove_stale_temporaries``). Files of live processes
(another flowrt writing there now) and files not named this way are never touched.

Every OSError (full disk, read-only folder, permission, a folder in the way) becomes one
``StorageError`` line naming the destination.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional, Set, Union

from flowrt.errors import InputError, StorageError, storage_error

__all__ = ["atomic_file", "remove_stale_temporaries", "check_output_path", "existing_mode", "TEMP_PATTERN"]

TEMP_PATTERN = re.compile(r"^\..+\.flowrt-(\d+)-[A-Za-z0-9_]+\.tmp$")
_cleaned: Set[str] = set()   # folders this process has already swept (once each is enough)


def _default_permissions() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask   # what a plain new file gets (mkstemp would leave 0600)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: Union[str, os.PathLike], *, force: bool = False) -> int:
    """Delete ``.NAME.flowrt-PID-*.tmp`` files in ``folder`` whose PID is no longer running;
    returns how many. Done once per folder per process unless ``force``; never raises."""
    key = os.path.abspath(folder)
    if key in _cleaned and not force:
        return 0
    _cleaned.add(key)
    removed = 0
    try:
        entries = list(os.scandir(key))
    except OSError:
        return 0
    for entry in entries:
        match = TEMP_PATTERN.match(entry.name)
        if match and not _alive(int(match[1])):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def check_output_path(path: Union[str, os.PathLike], input_path: Optional[str] = None) -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written: its folder is missing or
    not writable, it is a folder, or it is the input itself (same file, also through a symbolic or
    hard link). InputError for what the user named, StorageError for what the file system refuses."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; name an output file")
    existing_mode(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: output folder {path.parent} does not exist")
    if input_path is not None and path.exists():
        try:
            same = os.path.samefile(path, input_path)
        except OSError:
            same = path.resolve() == Path(input_path).resolve()
        if same:
            raise InputError(f"{path}: refusing to overwrite the input image")
    if not os.access(path.parent, os.W_OK):
        raise StorageError(f"{path}: cannot write into {path.parent} (no permission or read-only)")
    return path


def existing_mode(path: Path) -> Optional[int]:
    """The permission bits of the regular file at ``path`` (followed through a symbolic link), None
    when nothing is there; InputError for a device, FIFO or socket (or a link to one): flowrt
    replaces only regular files, never /dev/full or a pipe someone named by mistake."""
    try:
        info = os.stat(path)
    except OSError:   # absent, or a dangling link: a new name
        return None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
        raise InputError(f"{path}: is {kind}, not a regular file; flowrt replaces only regular files")
    return stat.S_IMODE(info.st_mode)


@contextlib.contextmanager
def atomic_file(path: Union[str, os.PathLike], mode: str = "wb", *, permissions: Optional[int] = None,
                fsync: bool = True) -> Iterator[IO]:
    """Yield a file object (``mode`` 'wb' or 'w') whose contents replace ``path`` when the block ends
    without an exception. permissions: None = those of the file replaced, else as a plain new file
    under the umask; a device, FIFO or socket at ``path`` is refused (InputError). fsync: False for
    scratch files a crash may tear (they are checked and redone on resume). An OSError, in the block
    or here, becomes StorageError."""
    path = Path(path)
    kept = existing_mode(path)   # an overwritten output keeps its mode (0600 stays 0600)
    remove_stale_temporaries(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.flowrt-{os.getpid()}-", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise storage_error(path, exc) from None
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, permissions if permissions is not None else kept if kept is not None
                 else _default_permissions())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise storage_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
