"""Atomic file writes: a reader sees the old file or the complete new one, never a partial file.

Writers (SimpleITK, Slicer storage nodes, numpy) choose the format from the file name's
extension, so the temporary file keeps the destination's full suffix (``.seg.nrrd``, ``.nii.gz``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import InputError

#: Multi-part suffixes recognised as one extension.
COMPOUND_SUFFIXES = (".seg.nrrd", ".nii.gz", ".tar.gz")


def full_suffix(path: str | os.PathLike) -> str:
    """The extension of ``path`` including compound ones, lower-case (``.seg.nrrd``, ``.nii.gz``)."""
    name = Path(path).name.lower()
    for compound in COMPOUND_SUFFIXES:
        if name.endswith(compound):
            return compound
    return Path(name).suffix


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically.

    The temporary file lives in the destination folder (so ``os.replace`` is atomic on the same
    file system) and carries the destination's extension. On any exception the temporary file is
    deleted and ``path`` is left untouched.

    Raises
    ------
    InputError: when the destination folder does not exist or is not writable.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(
            f"cannot write {dest}: the folder {folder} does not exist",
            "create the folder first or choose another output path",
        )
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot write {dest}: the folder {folder} is not writable",
                         "choose a folder you can write to")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial" + full_suffix(dest), dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"the writer produced no data for {dest}")
        # mkstemp creates the file owner-only (0600); give it the mode a plain open() would.
        os.chmod(tmp, _new_file_mode(dest))
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _new_file_mode(dest: Path) -> int:
    """The permission bits for ``dest``: those of the file it replaces, else 0666 minus the umask."""
    try:
        return dest.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
