"""The Slicer extension's layout: CMake configures against a (mock) Slicer SDK, installs every
CardiacAI Python file and every file of each scripted module, and the logic packages (CardiacAI,
CardiacAISegmentLib) stay free of Qt and Slicer application objects."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "CardiacAI"
#: Scripted modules: folder -> its headless logic package (must not import Qt / the application).
SCRIPTED_MODULES = {"CardiacAISegment": "CardiacAISegmentLib"}
SCRIPTED_MODULES_PREFIX = "lib/Slicer-5.8/qt-scripted-modules/"
#: Files of a scripted module folder that its CMakeLists.txt must install.
MODULE_FILE_SUFFIXES = {".py", ".ui", ".png", ".txt"}
FORBIDDEN_IMPORTS = {"qt", "ctk", "slicer.app", "slicer.modules", "PythonQt"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> set[str]:
    """Install paths of every file the extension's CMake passes to the (mock) Slicer macros."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    build = tmp_path_factory.mktemp("build")
    run = subprocess.run(
        [cmake, "-S", str(REPO), "-B", str(build),
         f"-DSlicer_DIR={REPO / 'Testing' / 'cmake' / 'mock-slicer'}"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return set((build / "installed-python-files.txt").read_text().split())


def test_cmake_configures_and_installs_the_whole_package(installed):
    prefix = SCRIPTED_MODULES_PREFIX + "CardiacAI/"
    expected = {prefix + p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                if "__pycache__" not in p.parts}
    assert expected and expected <= installed, sorted(expected - installed)[:5]
    assert prefix + "__init__.py" in installed


@pytest.mark.parametrize("module", sorted(SCRIPTED_MODULES))
def test_cmake_installs_every_file_of_each_scripted_module(installed, module):
    folder = REPO / module
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
             if p.is_file() and p.suffix in MODULE_FILE_SUFFIXES and "__pycache__" not in p.parts
             and p.name != "CMakeLists.txt"]
    assert f"{module}.py" in files and f"Resources/UI/{module}.ui" in files
    # Slicer installs a scripted module's scripts and resources under qt-scripted-modules/, paths kept.
    missing = sorted(f for f in files if SCRIPTED_MODULES_PREFIX + f not in installed)
    assert not missing, f"not listed in {module}/CMakeLists.txt: {missing}"


def _headless_python_files():
    yield from PACKAGE.rglob("*.py")
    for module, lib in SCRIPTED_MODULES.items():
        yield from (REPO / module / lib).rglob("*.py")


def test_logic_package_never_imports_qt_or_slicer_application():
    offenders = []
    for path in _headless_python_files():
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
