"""The architecture's import rules (ARCHITECTURE.md), checked on the source, not on trust.

The runtime (``flowrt/``) never imports training, export or the CLI: the flow's definition lives in
``flowrt.prior`` and training imports it from there. Within the runtime, data flows one way: the
low layers (io, operators, prior, solve, tiling) never import the pipeline that drives them.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "flowrt"
FORBIDDEN_FOR_RUNTIME = ("flowrt.train", "flowrt.export", "flowrt.cli")
LOW_LAYERS = ("io", "operators", "prior", "solve", "denoise", "tiling")


def imported_modules(path: Path) -> set:
    """Absolute dotted names of every import in a file (relative ones resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("flowrt",) + path.parent.relative_to(RUNTIME).parts) if path.is_relative_to(RUNTIME) else ""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module)
    return names


def runtime_files():
    return sorted(p for p in RUNTIME.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", runtime_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_runtime_never_imports_training_export_or_cli(path):
    bad = sorted(m for m in imported_modules(path) if m.startswith(FORBIDDEN_FOR_RUNTIME))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("layer", LOW_LAYERS)
def test_low_layers_never_call_back_into_the_pipeline(layer):
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.startswith("flowrt.pipeline"))
                 for p in (RUNTIME / layer).rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_import_resolution_sees_relative_imports():
    names = imported_modules(RUNTIME / "operators" / "chain.py")
    assert any(n.startswith("flowrt.operators.") for n in names)


def test_ray_is_imported_in_one_place_and_only_above_the_pipeline():
    """Ray is optional: only ``flowrt.distributed.cluster`` imports it (with the install hint), and
    nothing below ``flowrt.distributed`` (the pipeline, the low layers) imports that package."""
    importers = {str(p.relative_to(ROOT)) for p in runtime_files() if any(
        m == "ray" or m.startswith("ray.") for m in imported_modules(p))}
    assert importers == {"flowrt/distributed/cluster.py"}
    below = [p for layer in (*LOW_LAYERS, "pipeline") for p in (RUNTIME / layer).rglob("*.py")]
    assert not [str(p) for p in below if any(m.startswith("flowrt.distributed") for m in imported_modules(p))]


def test_the_denoiser_is_torch_free():
    """The start denoiser serves the torch-free ONNX Runtime engine too."""
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] == "torch")
                 for p in (RUNTIME / "denoise").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}
