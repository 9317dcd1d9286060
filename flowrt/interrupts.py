"""Ctrl-C that stops a restore at a safe point, never inside native code.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main thread is next between
bytecodes, which includes moments inside numba's dispatcher and onnxruntime's import; there the
interrupt became a SystemError, an ImportError or a segmentation fault. Under ``deferred()`` the
first Ctrl-C only sets a flag and the long loops (denoiser chunks, MAP iterations, tiles, batch
images) call ``check()`` between native calls, which raises KeyboardInterrupt there. A second Ctrl-C
raises at once, for a user who will not wait for the next check point.
"""
from __future__ import annotations

import contextlib
import signal
import threading

_requested = threading.Event()


@contextlib.contextmanager
def deferred():
    """Within the block, SIGINT (first press) is raised at the next ``check()``. A no-op off the main
    thread, where signal handlers cannot be set, and where SIGINT is ignored (a background job)."""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous in (None, signal.SIG_IGN):   # off the main thread, or started with Ctrl-C ignored (nohup, &)
        yield
        return

    def on_sigint(signum, frame):
        if _requested.is_set():   # the second press: stop now
            raise KeyboardInterrupt
        _requested.set()

    _requested.clear()
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
        check()   # a press after the last check point still stops the command with its exit code
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed under ``deferred()``; cheap enough per chunk."""
    if _requested.is_set():
        _requested.clear()
        raise KeyboardInterrupt
