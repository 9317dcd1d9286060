"""The one atomic writer (flowrt.io.atomic): whole or nothing, normal permissions, no stray temp file."""
from __future__ import annotations

import os

import pytest

from flowrt.io.atomic import atomic_file


def test_contents_replace_the_destination_with_normal_permissions(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with atomic_file(dest) as fh:
        fh.write(b"new")
    assert dest.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_failure_leaves_the_destination_and_no_temporary_file(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("kept")
    with pytest.raises(RuntimeError):
        with atomic_file(dest, "w") as fh:
            fh.write("half")
            raise RuntimeError("killed mid-write")
    assert dest.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_explicit_permissions(tmp_path):
    with atomic_file(tmp_path / "manifest.yaml", "w", permissions=0o644) as fh:
        fh.write("a: 1\n")
    assert (tmp_path / "manifest.yaml").stat().st_mode & 0o777 == 0o644
