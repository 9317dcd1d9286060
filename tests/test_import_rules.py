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
LOW_LAYERS = ("io", "operators", "numeric", "prior", "solve", "denoise", "tiling")
# The ort engine's path: none of these imports torch or the torch engine's modules, even lazily
# (tests/test_torch_free.py runs the whole path with torch blocked)
TORCH_FREE = ("numeric", "denoise", "solve/config.py", "solve/schedule.py", "solve/start.py", "solve/splitting.py",
              "solve/numpy_solver.py", "solve/loop.py",
              "prior/ort_gradient.py", "prior/onnx_backend.py", "prior/folders.py")


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


@pytest.mark.parametrize("part", TORCH_FREE)
def test_the_ort_engines_path_is_torch_free(part):
    """The numpy forward models and loop, the denoiser and the ORT prior name no torch module and none
    of the torch engine's (ort_gradient's OrtTorchPrior adapter imports ort_torch when called)."""
    paths = [RUNTIME / part] if part.endswith(".py") else sorted((RUNTIME / part).rglob("*.py"))
    torch_side = ("flowrt.operators", "flowrt.solve.solver", "flowrt.device")
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] == "torch"
                                                  or m.startswith(torch_side))
                 for p in paths}
    assert not {k: v for k, v in offenders.items() if v}


# Package-level import cycles still to break, each with its owner's reason: io/tiff_stream imports
# tiling.resume.fsync_dir (it belongs in io, beside the atomic writer).
KNOWN_CYCLES = {frozenset({"io", "tiling"})}


def package_graph() -> dict:
    """{package: packages it imports} over flowrt/'s packages and top-level modules, lazy imports included."""
    graph = {}
    for path in runtime_files():
        parts = path.relative_to(RUNTIME).parts
        own = parts[0] if len(parts) > 1 else parts[0][:-3]
        for name in imported_modules(path):
            if name and name.startswith("flowrt.") and name.split(".")[1] != own:
                graph.setdefault(own, set()).add(name.split(".")[1])
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one package (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while not component or node not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))
    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_packages():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]  # the finder finds
    assert set(cycles(package_graph())) <= KNOWN_CYCLES
