"""The degradations a chain applies at the restored size (before any downsampling), by option name.

One entry per degradation says what its option is (the ``RestoreOptions`` field, the CLI flag and
its help) and names the module that implements it. The CLI makes its flags from this registry, the
plan parses and describes each one given, and ``flowrt.numeric.chain`` builds their stages, so a
new degradation touches four files: its module here in ``numeric/``, one entry below, its
``RestoreOptions`` field (``flowrt/pipeline/options.py``) and its test (``tests/test_degradations.py``
checks every entry with its ``example`` already: adjoint, shape, plan, words, CLI flag).

The module of an entry defines ``parse_option(value) -> parsed`` (reads files, raises InputError),
``stage_for(parsed) -> numeric.base.Stage`` (at the restored size, shape-preserving) and
``describe(parsed) -> str`` (the summary's words). Light: the module is imported only when an
option is given, so ``flowrt --help`` stays instant.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Tuple


@dataclass(frozen=True)
class Degradation:
    option: str          # the RestoreOptions field; the CLI flag is --option with dashes
    metavar: str         # the flag's value in --help
    help: str            # the flag's help (the CLI adds "[default: none]")
    module: str          # the implementing module (parse_option, stage_for, describe)
    example: str         # a valid value (the registry's property test runs every entry with it)
    inverts: bool = True  # undoing it needs the chain inverted (the splitting start), as a downsampling does
    path: bool = False   # its value may name a file (a Ray batch makes it absolute for the workers)

    @property
    def flag(self) -> str:
        return "--" + self.option.replace("_", "-")

    def _impl(self):
        return importlib.import_module(self.module)

    def parse(self, value: Any) -> Any:
        return self._impl().parse_option(value)

    def stage(self, parsed: Any):
        return self._impl().stage_for(parsed)

    def describe(self, parsed: Any) -> str:
        return self._impl().describe(parsed)


REGISTRY: Dict[str, Degradation] = {d.option: d for d in (
    Degradation("blur", "SPEC", "Known blur: 'gaussian:S' (std in px) or a kernel image/.npy file.",
                "flowrt.numeric.blur", example="gaussian:1.5", path=True),
)}

Parsed = Tuple[Tuple[str, Any], ...]   # (option, parsed value) of each degradation given, in registry order


def parse_given(options: Any) -> Parsed:
    """(option, parsed value) for each registered option set (not None) on ``options`` (a RestoreOptions)."""
    return tuple((name, d.parse(getattr(options, name))) for name, d in REGISTRY.items()
                 if getattr(options, name, None) is not None)


def stages_for(parsed: Iterable[Tuple[str, Any]]) -> list:
    """The chain's stages for ``parse_given``'s result, in its order."""
    return [REGISTRY[name].stage(value) for name, value in parsed]


def inverts(parsed: Iterable[Tuple[str, Any]]) -> bool:
    return any(REGISTRY[name].inverts for name, _ in parsed)


def describe(parsed: Iterable[Tuple[str, Any]]) -> list:
    return [REGISTRY[name].describe(value) for name, value in parsed]
