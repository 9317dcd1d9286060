"""The one atomic writer: every file flowrt writes appears whole or not at all.

The bytes go to a temporary ``.NAME.XXXX.tmp`` in the destination's folder (same file system, so
the rename is atomic), are flushed and fsync'ed, get normal permissions, and are renamed onto the
destination; on any failure the temporary file is removed and the destination is untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional, Union


def _default_permissions() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask   # what a plain new file gets (mkstemp would leave 0600)


@contextlib.contextmanager
def atomic_file(path: Union[str, os.PathLike], mode: str = "wb", *, permissions: Optional[int] = None,
                fsync: bool = True) -> Iterator[IO]:
    """Yield a file object (``mode`` 'wb' or 'w') whose contents replace ``path`` when the block ends
    without an exception. permissions: None = as a plain new file under the umask. fsync: False for
    scratch files a crash may tear (they are checked and redone on resume). OSError as raised."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, _default_permissions() if permissions is None else permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
