"""The catalog model a real-scan benchmark runs (shared by the benchmark scripts): ``--model`` and ``--catalog``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model ID`` (default: the task's default model) and ``--catalog FILE`` (default: the packaged one)."""
    parser.add_argument("--model", help="catalog model id (default: the task's default)")
    parser.add_argument("--catalog", type=Path, help="catalog file (default: the packaged one)")


def chosen_model(args: argparse.Namespace, task: str = "ima-aorta"):
    """(catalog, entry): the catalog ``args.catalog`` names (the packaged one when None) and its entry
    ``args.model`` (the task's default when None). Raises ModelError for an unknown model id or a bad catalog."""
    from CardiacAI.models import ModelCatalog

    catalog = ModelCatalog.load(args.catalog)
    return catalog, (catalog.get(args.model) if args.model else catalog.default_for(task))
