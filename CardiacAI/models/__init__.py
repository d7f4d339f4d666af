"""Segmentation model catalog and checksummed weight downloads.

* :mod:`.catalog` — :class:`ModelCatalog` (``catalog.json`` validated against
  ``catalog.schema.json``) and :class:`ModelEntry` (one model version: task, label set, weights,
  model card).
* :mod:`.download` — streaming download with sha256 check into the per-user cache
  (``$CARDIACAI_CACHE_DIR`` or the platform cache folder), and cache management
  (:func:`list_cached`, :func:`remove_cached`).
"""

from .catalog import (
    DEFAULT_CATALOG_PATH,
    MAX_SHIPPED_WEIGHTS_BYTES,
    ModelCatalog,
    ModelEntry,
    catalog_entry_from_card,
)
from .download import (
    CACHE_ENV_VAR,
    CachedModel,
    download_file,
    file_matches_sha256,
    list_cached,
    models_cache_dir,
    remove_cached,
    user_cache_root,
)

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_CATALOG_PATH",
    "MAX_SHIPPED_WEIGHTS_BYTES",
    "CachedModel",
    "ModelCatalog",
    "ModelEntry",
    "catalog_entry_from_card",
    "download_file",
    "file_matches_sha256",
    "list_cached",
    "models_cache_dir",
    "remove_cached",
    "user_cache_root",
]
