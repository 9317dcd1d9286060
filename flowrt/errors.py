"""User-facing errors: anything a user can cause by what they pass in or where they write.

The CLI turns a ``FlowrtError`` into one line on stderr and a non-zero exit,
never a traceback. Library code raises the most specific subclass.
"""
from __future__ import annotations

import os


class FlowrtError(Exception):
    """A problem with what the user gave (a file, an option, a model), explained in one line."""


class InputError(FlowrtError, ValueError):
    """An input image, mask, kernel or option value is unusable."""


class ModelError(FlowrtError, ValueError):
    """A model folder or checkpoint is missing, corrupt, tampered with or of the wrong kind."""


class StorageError(FlowrtError):
    """A file or folder could not be read, created or written: full disk, no permission, read-only
    file system, a folder where a file belongs, a closed pipe. The one type for every I/O failure."""


class SolverError(FlowrtError):
    """The optimiser failed on an image and the user did not ask to accept its fallback."""


def storage_error(path, exc: OSError, doing: str = "write") -> StorageError:
    """One line for an OSError met while ``doing`` (read, write, create...) ``path``."""
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc)) or type(exc).__name__
    return StorageError(f"{path}: cannot {doing} ({reason})")


# The extra that brings torch (the torch engine, training, export, score maps): ``pip install "flowrt[torch]"``.
TORCH_EXTRA = 'pip install "flowrt[torch]"'


def torch_installed() -> bool:
    """Whether torch can be imported here, found without importing it (about 2 s)."""
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def missing_torch(what: str) -> InputError:
    """One line for ``what`` asked of an install without torch (flowrt's runtime needs none)."""
    return InputError(f"{what} needs torch, which this install lacks: {TORCH_EXTRA}")


def was_interrupted(exc: BaseException) -> bool:
    """True when ``exc`` is, or was raised while handling, a KeyboardInterrupt (Ctrl-C landing inside a
    numba kernel surfaces as a SystemError whose context is the interrupt)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
