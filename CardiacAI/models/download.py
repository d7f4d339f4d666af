"""Checksummed model downloads into a per-user cache, and managing that cache.

Layout: ``<models cache>/<model id>/<version>/<file name>``, where ``<models cache>`` is

* the ``cache_dir`` argument when a caller gives one, else
* ``$CARDIACAI_CACHE_DIR/models`` when that environment variable is set (offline installs,
  shared or read-only machines), else
* the platform's per-user cache folder + ``cardiacai/models``: ``$XDG_CACHE_HOME`` or
  ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows.

A download streams with :mod:`urllib.request` (which honours ``HTTPS_PROXY``/``HTTP_PROXY``) into
a temporary file beside the destination, hashing as it goes; the file is renamed into place only
after its sha256 matches the catalog, so the cache never holds a partial or wrong file. Network
failures become a :class:`~CardiacAI.errors.ModelError` that says how to download the file by hand
and the exact path to put it at (the lesson of TotalSegmentator's offline/firewall issues and of
SlicerMONAIAuto3DSeg's versioned model cache).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..errors import InputError, ModelError, OperationCancelled
from ..io.atomic import atomic_output

log = logging.getLogger(__name__)

#: Environment variable naming the CardiacAI cache root (models go in its ``models`` sub-folder).
CACHE_ENV_VAR = "CARDIACAI_CACHE_DIR"
#: Bytes read per network/disk step: small enough for a responsive progress bar and cancel.
CHUNK_BYTES = 64 * 1024
#: Seconds a blocking network operation (connect, one read) may take before giving up.
DEFAULT_TIMEOUT_S = 30.0

#: ``progress(bytes_done, bytes_total)``; bytes_total is None when unknown. Returning False cancels.
ProgressCallback = Callable[[int, int | None], bool | None]

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_VERSION_PATTERN = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# (resolved path, size, mtime_ns, sha256) of files already hashed in this process, so that
# repeated look-ups of a large weights file do not re-read it; any change of size or mtime re-hashes.
_verified: set[tuple[str, int, int, str]] = set()
_verified_lock = threading.Lock()


def user_cache_root() -> Path:
    """The CardiacAI cache root: ``$CARDIACAI_CACHE_DIR`` or the platform's per-user cache folder."""
    env = os.environ.get(CACHE_ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "CardiacAI" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "CardiacAI"
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "cardiacai"


def models_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding ``<model id>/<version>/`` sub-folders: ``cache_dir`` or ``user_cache_root()/models``."""
    return Path(cache_dir).expanduser() if cache_dir is not None else user_cache_root() / "models"


def file_matches_sha256(path: str | os.PathLike, sha256: str) -> bool:
    """True when the file's sha256 equals ``sha256`` (hex). Remembers verified files per process.

    A file is re-hashed whenever its size or modification time changed since it was verified.
    Raises OSError when the file cannot be read.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, sha256.lower())
    with _verified_lock:
        if key in _verified:
            return True
    from ..training.model_card import sha256_file  # light: CardiacAI.training imports torch lazily

    if sha256_file(path) != sha256.lower():
        return False
    with _verified_lock:
        _verified.add(key)
    return True


def download_file(
    url: str,
    destination: str | os.PathLike,
    sha256: str,
    *,
    size_bytes: int | None = None,
    what: str = "the file",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``destination``, keeping it only when its sha256 matches.

    Parameters
    ----------
    url: http(s) or file URL.
    destination: final path; its folder is created when missing.
    sha256: expected hex digest of the whole file.
    size_bytes: expected size, used for progress when the server sends no Content-Length and to
        stop early when the server sends more than that.
    what: how messages name the file, e.g. "the weights of model 'x' version 1.0.0".
    progress: called as ``progress(bytes_done, bytes_total)`` before the first and after every
        chunk; bytes_total is None when unknown. Returning False cancels the download.
    cancel: an Event; setting it (from another thread) cancels the download.
    timeout_s: seconds allowed for connecting and for each read.

    Returns the destination path.

    Raises
    ------
    OperationCancelled: cancelled by ``progress`` or ``cancel``; nothing is left on disk.
    ModelError: network failure (offline-friendly message with the exact path to put a hand-made
        download at), checksum mismatch (expected vs actual, file discarded), or an unwritable
        cache folder.
    """
    destination = Path(destination)
    expected = sha256.lower()
    manual = _manual_download_hint(url, destination, expected, size_bytes)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create the model cache folder {destination.parent}: {exc.strerror or exc}",
            f"set the environment variable {CACHE_ENV_VAR} to a folder you can write to",
        ) from None

    request = urllib.request.Request(url, headers={"User-Agent": f"CardiacAI/{__version__}"})
    try:
        with atomic_output(destination) as tmp:
            try:
                response = urllib.request.urlopen(request, timeout=timeout_s)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ModelError(f"could not download {what} from {url}: {_reason(exc)}", manual) from None
            with response, open(tmp, "wb") as out:
                total = _content_length(response) or size_bytes
                digest = hashlib.sha256()
                done = 0
                _report(progress, cancel, done, total, what)
                while True:
                    try:
                        chunk = response.read(CHUNK_BYTES)
                    except (OSError, urllib.error.URLError) as exc:
                        raise ModelError(
                            f"the download of {what} from {url} broke off after {done} bytes: {_reason(exc)}",
                            manual,
                        ) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if size_bytes is not None and done > size_bytes:
                        raise ModelError(
                            f"{url} sent more than the {size_bytes} bytes the catalog gives for {what}; "
                            "the file was discarded",
                            "the server holds a different file than this CardiacAI version expects: "
                            "update CardiacAI, or " + manual,
                        )
                    _report(progress, cancel, done, total, what)
            actual = digest.hexdigest()
            if actual != expected:
                raise ModelError(
                    f"the file downloaded from {url} for {what} does not match the catalog checksum "
                    f"(expected sha256 {expected}, got {actual}, {done} bytes); the file was discarded",
                    "try again (the transfer may have been altered by a proxy); if it keeps failing the "
                    "server holds a different file than this CardiacAI version expects: update CardiacAI, "
                    "or " + manual,
                )
    except InputError as exc:  # atomic_output: folder not writable
        raise ModelError(exc.problem, f"set the environment variable {CACHE_ENV_VAR} to a folder you can write to") from None
    except OSError as exc:  # disk full, permissions while writing
        raise ModelError(
            f"cannot write {what} to {destination}: {exc.strerror or exc}",
            f"free disk space or set the environment variable {CACHE_ENV_VAR} to another folder",
        ) from None
    with _verified_lock:
        stat = destination.stat()
        _verified.add((str(destination.resolve()), stat.st_size, stat.st_mtime_ns, expected))
    return destination


def _report(progress, cancel, done, total, what) -> None:
    if cancel is not None and cancel.is_set():
        raise OperationCancelled(f"the download of {what} was cancelled", "nothing was saved")
    if progress is not None and progress(done, total) is False:
        raise OperationCancelled(f"the download of {what} was cancelled", "nothing was saved")


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, socket.timeout) or isinstance(reason, TimeoutError):
            return "the connection timed out"
        return str(getattr(reason, "strerror", None) or reason)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "the connection timed out"
    return str(getattr(exc, "strerror", None) or exc)


def _manual_download_hint(url: str, destination: Path, sha256: str, size_bytes: int | None) -> str:
    size = f", {size_bytes} bytes" if size_bytes else ""
    relative = Path(*destination.parts[-3:])
    return (
        f"if this computer is offline or behind a firewall, download {url} on a computer with internet "
        f"access (sha256 {sha256}{size}) and copy it to {destination} (create the folder if needed), or set "
        f"the environment variable {CACHE_ENV_VAR} to a folder whose models/{relative.as_posix()} holds it; "
        "behind a proxy, set HTTPS_PROXY"
    )


# -- cache management --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CachedModel:
    """One downloaded model version in the cache.

    Attributes: model_id, version, folder (``<cache>/<id>/<version>``), files (complete files in it,
    temporary download files excluded), size_bytes (their total size).
    """

    model_id: str
    version: str
    folder: Path
    files: tuple[Path, ...]
    size_bytes: int


def list_cached(cache_dir: str | os.PathLike | None = None) -> list[CachedModel]:
    """The model versions present in the cache, sorted by id then version (numerically).

    Folders whose names are not a model id / version, and empty version folders, are ignored.
    """
    root = models_cache_dir(cache_dir)
    found = []
    if not root.is_dir():
        return found
    for id_dir in sorted(p for p in root.iterdir() if p.is_dir() and _ID_PATTERN.match(p.name)):
        versions = [p for p in id_dir.iterdir() if p.is_dir() and _VERSION_PATTERN.match(p.name)]
        for version_dir in sorted(versions, key=lambda p: version_key(p.name)):
            files = tuple(sorted(f for f in version_dir.iterdir() if f.is_file() and not f.name.startswith(".")))
            if files:
                found.append(CachedModel(id_dir.name, version_dir.name, version_dir, files,
                                         sum(f.stat().st_size for f in files)))
    return found


def remove_cached(model_id: str, version: str | None = None, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Delete a cached model version (or all versions of ``model_id`` when ``version`` is None).

    Returns the removed folders (empty when nothing was cached). Only folders inside the models
    cache are touched.

    Raises
    ------
    InputError: ``model_id`` or ``version`` is not a valid identifier (e.g. contains a path).
    ModelError: a folder could not be deleted (file in use, permissions).
    """
    if not _ID_PATTERN.match(model_id or ""):
        raise InputError(f"'{model_id}' is not a model id", "use an id listed by the model catalog")
    if version is not None and not _VERSION_PATTERN.match(version):
        raise InputError(f"'{version}' is not a model version", "give a version such as 1.0.0, or none for all")
    id_dir = models_cache_dir(cache_dir) / model_id
    targets = [id_dir / version] if version is not None else [id_dir]
    removed = []
    for target in targets:
        if not target.is_dir():
            continue
        try:
            shutil.rmtree(target)
        except OSError as exc:
            raise ModelError(f"cannot delete the cached model folder {target}: {exc.strerror or exc}",
                             "close programs using it and try again, or delete the folder by hand") from None
        removed.append(target)
    if version is not None and id_dir.is_dir() and not any(id_dir.iterdir()):
        id_dir.rmdir()
    return removed


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key of a MAJOR.MINOR.PATCH version string (numeric, so 1.10.0 > 1.9.0)."""
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch
