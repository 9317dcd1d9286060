"""Keeping C libraries' own stderr output (libjpeg, libpng warnings) off the user's terminal.

libjpeg and libpng report warnings with fprintf(stderr), below Python, so neither ``warnings``
nor ``logging`` sees them. ``captured_stderr`` points file descriptor 2 at a scratch file while
the library runs and hands the lines back, for the caller to log or turn into a flowrt message.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator, List

# fd 2 is process-wide: two threads redirecting it at once would each restore the other's sink
LOCK = threading.RLock()


@contextmanager
def captured_stderr(messages: List[str]) -> Iterator[None]:
    """Within the block, bytes written to fd 2 go to a scratch file; on leaving, its non-empty
    lines (stripped) are appended to ``messages``. Python's own sys.stderr is flushed first so
    nothing already written by Python is swallowed."""
    with LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            messages.extend(line.strip() for line in text.splitlines() if line.strip())
