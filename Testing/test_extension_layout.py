"""The Slicer extension's layout: CMake configures against a (mock) Slicer SDK, installs every
CardiacAI Python file, and the logic package stays free of Qt and Slicer application objects."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "CardiacAI"
FORBIDDEN_IMPORTS = {"qt", "ctk", "slicer.app", "slicer.modules", "PythonQt"}


def test_cmake_configures_and_installs_the_whole_package(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    run = subprocess.run(
        [cmake, "-S", str(REPO), "-B", str(tmp_path),
         f"-DSlicer_DIR={REPO / 'Testing' / 'cmake' / 'mock-slicer'}"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    installed = set((tmp_path / "installed-python-files.txt").read_text().split())
    prefix = "lib/Slicer-5.8/qt-scripted-modules/CardiacAI/"
    expected = {prefix + p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                if "__pycache__" not in p.parts}
    assert expected and expected <= installed, sorted(expected - installed)[:5]
    assert prefix + "__init__.py" in installed


def test_logic_package_never_imports_qt_or_slicer_application():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if (isinstance(node, ast.Attribute) and node.attr in {"app", "modules"}
                    and isinstance(node.value, ast.Name) and node.value.id == "slicer"):
                names = [f"slicer.{node.attr}"]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IMPORTS):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} uses {name}")
    assert not offenders, offenders
