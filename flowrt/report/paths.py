"""Where a report file may go: checked before any work, so a bad path fails in one line and early."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from flowrt.errors import InputError

PathLike = Union[str, Path]


def check_output(path: PathLike, suffixes: Sequence[str], kind: str, inputs: Sequence[PathLike] = (),
                 created: Sequence[PathLike] = ()) -> None:
    """InputError unless ``path`` ends in one of ``suffixes``, its folder exists (or is one of the
    folders ``created`` by the command) and it is none of ``inputs`` (inputs are never overwritten;
    '-' is stdin and never matches)."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{path} must end in {' or '.join(suffixes)} (the {kind} is written as {suffixes[0][1:].upper()})")
    folder = path.parent.resolve()
    if not folder.is_dir() and folder not in {Path(c).resolve() for c in created}:
        raise InputError(f"{path}: folder {path.parent} does not exist")
    if path.exists() and any(str(i) != "-" and path.resolve() == Path(i).resolve() for i in inputs):
        raise InputError(f"{path} is an input; inputs are never overwritten")
