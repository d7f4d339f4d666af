"""Python requirements of the CardiacAISegment module: check them, and install them only after the user agrees.

Slicer ships Python with numpy but without MONAI, SimpleITK, PyTorch and the rest of what
CardiacAI needs. Following Slicer's guidance for extensions (and what SlicerMONAIAuto3DSeg and
SlicerNNUnet do), nothing is installed when the module is imported or loaded: the check runs when
the user first asks for a segmentation, and installation happens only after a confirmation
that lists exactly what will be installed.

* PyTorch is installed by the PyTorch extension (``PyTorchUtils.PyTorchUtilsLogic().installTorch``),
  which picks the wheel matching the computer's CUDA driver (or the CPU build).
* The other packages (``Resources/requirements.txt``) are installed with
  ``slicer.packaging.pip_ensure`` where it exists (Slicer >= 5.11, progress dialog and
  restart prompt), else with ``slicer.util.pip_install``.

This module uses only the standard library and :mod:`CardiacAI.errors`, so it works before any
requirement is installed and headless (tests pass their own installer and confirmation).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from CardiacAI.errors import CardiacAIError

#: ``Resources/requirements.txt`` next to this package, in the source tree and once installed
#: (Slicer installs a module's resources under ``qt-scripted-modules/Resources``).
REQUIREMENTS_PATH = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"
#: Distribution name of PyTorch (installed through the PyTorch extension, not pip directly).
TORCH_DISTRIBUTION = "torch"
#: Shown to the user as the requester of the installation.
REQUESTER = "CardiacAI"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class DependencyError(CardiacAIError):
    """A required Python package is missing and was not (or could not be) installed."""


@dataclasses.dataclass(frozen=True)
class DependencyStatus:
    """What is missing from the Python environment.

    Attributes
    ----------
    missing: requirement lines of ``requirements.txt`` whose distribution is not installed (or
        whose installed version does not satisfy the line's specifier), in file order.
    torch_missing: True when PyTorch is not installed.
    """

    missing: tuple[str, ...]
    torch_missing: bool

    @property
    def ok(self) -> bool:
        """True when nothing is missing."""
        return not self.missing and not self.torch_missing

    def describe(self) -> str:
        """A confirmation text naming every package that would be installed (empty when ok)."""
        if self.ok:
            return ""
        parts = []
        if self.torch_missing:
            parts.append("PyTorch (installed by the PyTorch extension; it chooses the build for your "
                         "GPU, a download of up to a few GB)")
        if self.missing:
            parts.append("the Python packages " + ", ".join(_name(r) for r in self.missing))
        return ("CardiacAI needs " + " and ".join(parts) + ", which are not installed yet. "
                "Install them now? This may take several minutes; Slicer may ask to restart afterwards.")


class Installer(Protocol):
    """How packages get installed (inside Slicer: :class:`SlicerInstaller`; tests pass a fake)."""

    def install_torch(self) -> None:
        """Install PyTorch; raise DependencyError on failure."""

    def install_packages(self, requirements: list[str]) -> None:
        """Install pip requirement lines; raise DependencyError on failure."""


def read_requirements(path: str | Path = REQUIREMENTS_PATH) -> list[str]:
    """Requirement lines of a requirements file (comments, blank lines and pip options skipped).

    Raises DependencyError when the file is missing (a damaged installation).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DependencyError(f"the requirements file {path} cannot be read: {exc.strerror or exc}",
                              "reinstall the CardiacAI extension") from None
    requirements = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(line)
    return requirements


def is_satisfied(requirement: str) -> bool:
    """True when the distribution of a requirement line is installed in a version that fits it.

    Uses installed-distribution metadata (``importlib.metadata``), never imports the package, so
    checking is fast and has no side effects. Version specifiers are honoured when the
    ``packaging`` library is available (it is in Slicer); otherwise any installed version counts.
    """
    name = _name(requirement)
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return True
    return Requirement(requirement).specifier.contains(installed, prereleases=True)


def check_dependencies(requirements_path: str | Path = REQUIREMENTS_PATH) -> DependencyStatus:
    """What of ``requirements.txt`` and PyTorch is missing; installs nothing."""
    missing = tuple(r for r in read_requirements(requirements_path) if not is_satisfied(r))
    return DependencyStatus(missing=missing, torch_missing=not is_satisfied(TORCH_DISTRIBUTION))


def ensure_dependencies(confirm: Callable[[str], bool], installer: Installer | None = None, *,
                        requirements_path: str | Path = REQUIREMENTS_PATH) -> DependencyStatus:
    """Make sure every requirement is installed, asking ``confirm`` before installing anything.

    Parameters
    ----------
    confirm: called with :meth:`DependencyStatus.describe` when something is missing; installation
        goes ahead only when it returns True. Not called when nothing is missing.
    installer: does the installing; default :class:`SlicerInstaller` (needs the Slicer application).
    requirements_path: the requirements file (default ``Resources/requirements.txt``).

    Returns the status after installation (``ok`` is True).

    Raises
    ------
    DependencyError: the user declined (nothing was installed), installation failed, or a
        package is still missing afterwards (Slicer must restart to see it).
    """
    status = check_dependencies(requirements_path)
    if status.ok:
        return status
    if not confirm(status.describe()):
        raise DependencyError(
            "CardiacAI cannot segment without " + _listing(status) + ", and their installation was declined; "
            "nothing was installed",
            "start the segmentation again and accept the installation, or install them yourself from "
            "Slicer's Python console with slicer.util.pip_install(...) (PyTorch: PyTorch Utils module)",
        )
    installer = installer or SlicerInstaller()
    if status.torch_missing:
        installer.install_torch()
    if status.missing:
        installer.install_packages(list(status.missing))
    importlib.invalidate_caches()
    after = check_dependencies(requirements_path)
    if not after.ok:
        raise DependencyError(f"{_listing(after)} still missing after the installation",
                              "restart Slicer and try again; if it persists, see the Python console for pip's log")
    return after


class SlicerInstaller:
    """Installs through Slicer: PyTorch via the PyTorch extension, the rest via pip.

    Only usable inside the Slicer application; every Slicer import is done when a method runs,
    so importing this module stays headless.
    """

    def install_torch(self) -> None:
        """Install PyTorch with ``PyTorchUtils`` (the PyTorch extension, a dependency of CardiacAI).

        The user already confirmed (see :func:`ensure_dependencies`), so PyTorchUtils is not asked
        to confirm a second time.
        """
        try:
            import PyTorchUtils  # the PyTorch extension's scripted module
        except ImportError:
            raise DependencyError("the PyTorch extension, which installs PyTorch, is not installed",
                                  "install 'PyTorch' from the Extensions Manager, restart Slicer and try again") from None
        try:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False)
        except Exception as exc:  # pip and network failures come in many types
            raise DependencyError(f"PyTorch could not be installed: {exc}",
                                  "check the internet connection, or install it from the PyTorch Utils module") from None
        if torch is None:
            raise DependencyError("PyTorch was not installed",
                                  "install it from the PyTorch Utils module, then try again")

    def install_packages(self, requirements: list[str]) -> None:
        """Install requirement lines with ``slicer.packaging.pip_ensure`` (Slicer >= 5.11) or ``pip_install``."""
        try:
            try:
                from slicer import packaging as slicer_packaging
            except ImportError:
                slicer_packaging = None
            if slicer_packaging is not None and hasattr(slicer_packaging, "pip_ensure"):
                # Already confirmed by ensure_dependencies; pip_ensure still offers the restart.
                slicer_packaging.pip_ensure(requirements, requester=REQUESTER, prompt_install=False)
            else:
                import slicer.util

                # Older Slicer takes one command-line string (split like a shell would).
                slicer.util.pip_install(" ".join(requirements))
        except Exception as exc:  # CalledProcessError, RuntimeError (declined restart), OSError ...
            raise DependencyError(f"installing {', '.join(_name(r) for r in requirements)} failed: {exc}",
                                  "check the internet connection and the Python console for pip's log") from None


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    return match.group(1) if match else requirement.strip()


def _listing(status: DependencyStatus) -> str:
    names = (["PyTorch"] if status.torch_missing else []) + [_name(r) for r in status.missing]
    return ", ".join(names)
