"""The installed layout: setup.cfg lists exactly the package folders, and the CLI starts light."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnxruntime", "numba", "onnx")
TOP_FOLDERS = {"flowrt": "flowrt", "flowrt.train": "train", "flowrt.export": "export", "flowrt.cli": "cli"}


def setup_options() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser["options"]


def listed_packages() -> list:
    return setup_options()["packages"].split()


def package_dir() -> dict:
    pairs = [line.split("=") for line in setup_options()["package_dir"].strip().splitlines()]
    return {name.strip(): folder.strip() for name, folder in pairs}


def packages_on_disk() -> set:
    """Dotted names of every folder with an __init__.py under the mapped top-level folders."""
    found = set()
    for name, folder in TOP_FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in rel:
                found.add(".".join((name,) + rel))
    return found


def test_package_dir_maps_each_package_to_its_top_level_folder():
    assert package_dir() == TOP_FOLDERS
    for folder in TOP_FOLDERS.values():
        assert (ROOT / folder / "__init__.py").is_file(), folder


def test_packages_list_matches_the_folders():
    listed, on_disk = set(listed_packages()), packages_on_disk()
    assert not on_disk - listed, f"add to setup.cfg [options] packages: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"setup.cfg lists packages with no folder: {sorted(listed - on_disk)}"


def test_no_stray_top_level_package_is_left_out():
    """A new top-level folder with Python code must be added to setup.cfg (and to TOP_FOLDERS)."""
    not_installed = {"tests", "benchmarks", "build", "dist", "runs"}
    stray = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - set(TOP_FOLDERS.values())
    assert stray <= not_installed, f"folders with __init__.py not in setup.cfg: {sorted(stray - not_installed)}"


def test_pyproject_holds_only_the_build_system():
    import tomllib
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(data) == {"build-system"}
    assert any(req.startswith("setuptools>=64") for req in data["build-system"]["requires"])


def test_console_script_and_default_config_are_declared():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    assert "flowrt = flowrt.cli.main:cli" in parser["options.entry_points"]["console_scripts"]
    assert "configs/*.yaml" in parser["options.package_data"]["flowrt.train"]
    assert (ROOT / "train" / "configs" / "default.yaml").is_file()


def test_installed_packages_import_from_this_checkout():
    import flowrt.cli
    import flowrt.train
    assert Path(flowrt.train.__file__).resolve().parent == ROOT / "train"
    assert Path(flowrt.cli.__file__).resolve().parent == ROOT / "cli"


HELP_PROBE = """
import sys
from flowrt.cli.main import cli
args = sys.argv[1:] + ["--help"]
try:
    cli.main(args, prog_name="flowrt", standalone_mode=True)
except SystemExit as exc:
    assert exc.code == 0, exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY})
print("HEAVY:" + ",".join(heavy))
"""


def loaded_heavy_modules(*command: str) -> list:
    probe = HELP_PROBE.replace("{HEAVY}", repr(set(HEAVY)))
    proc = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("HEAVY:")][-1]
    return [m for m in line[len("HEAVY:"):].split(",") if m]


def command_names() -> list:
    from flowrt.cli.main import cli
    return sorted(cli.commands)


def test_flowrt_help_imports_no_heavy_module():
    assert loaded_heavy_modules() == []


@pytest.mark.parametrize("command", command_names())
def test_each_command_help_imports_no_heavy_module(command):
    assert loaded_heavy_modules(command) == []


@pytest.mark.skipif(shutil.which("flowrt") is None, reason="console script not on PATH (package not installed)")
def test_console_script_answers_help():
    proc = subprocess.run(["flowrt", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: flowrt" in proc.stdout
