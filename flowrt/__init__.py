"""flowrt: generic image restoration with a learned normalizing-flow prior.

The Python API (``flowrt.api``) loads on first use, so ``import flowrt`` (and ``flowrt --help``)
stays light: ``flowrt.restore``, ``flowrt.load_prior``, ``flowrt.score``, ``flowrt.estimate_noise``,
the result ``flowrt.Restored`` and the option dataclasses ``flowrt.RestoreOptions``,
``flowrt.SolverConfig``, ``flowrt.TilingOptions``.
"""
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"  # 0.1.0: the 150-iteration MAP from the blurred observation (README)

_LAZY = {
    "restore": "flowrt.api", "load_prior": "flowrt.api", "score": "flowrt.api", "estimate_noise": "flowrt.api",
    "Restored": "flowrt.api", "RestoreOptions": "flowrt.pipeline.options", "SolverConfig": "flowrt.solve.config",
    "TilingOptions": "flowrt.pipeline.run", "FlowrtError": "flowrt.errors", "InputError": "flowrt.errors",
    "ModelError": "flowrt.errors",
}
__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time these load in __getattr__
    from flowrt.api import Restored, estimate_noise, load_prior, restore, score  # noqa: F401
    from flowrt.errors import FlowrtError, InputError, ModelError  # noqa: F401
    from flowrt.pipeline.options import RestoreOptions  # noqa: F401
    from flowrt.pipeline.run import TilingOptions  # noqa: F401
    from flowrt.solve.config import SolverConfig  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowrt' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value   # later look-ups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
