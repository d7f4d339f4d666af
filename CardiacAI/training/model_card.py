"""Model cards: the JSON file that travels with every ``model.pt`` (schema ``model_card.schema.json``).

A card says what the model segments (task, label values), how its input must be prepared
(spacing, LPS-aligned orientation, HU window and normalisation, patch size), what the network is
(name and parameters, so it can be rebuilt), how it was trained (exact command, generator
settings, seeds, time, machine) and its validation metrics, plus the weights file's size and
sha256 so a damaged or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..io.atomic import atomic_output

SCHEMA_PATH = Path(__file__).with_name("model_card.schema.json")


@lru_cache(maxsize=1)
def card_schema() -> dict[str, Any]:
    """The model card JSON Schema (draft 2020-12) as a dict."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validate_model_card(card: dict[str, Any], folder: str | Path | None = None) -> dict[str, Any]:
    """Check ``card`` against the schema and, when ``folder`` is given, against its model file.

    Returns the card. Raises ModelError naming the first schema violation (with its JSON path),
    a missing model file, or a size/sha256 mismatch between the card and the file.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(card_schema())
    errors = sorted(validator.iter_errors(card), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ModelError(f"the model card is invalid at {where}: {err.message}",
                         "use a card written by 'cardiacai train' or fix the field")
    labels = [entry["value"] for entry in card["labels"]]
    if len(set(labels)) != len(labels) or card["network"]["out_channels"] != max(labels) + 1:
        raise ModelError(f"the model card's label values {labels} do not match its "
                         f"{card['network']['out_channels']} output channels")
    if folder is not None:
        model_path = Path(folder) / card["model_file"]["path"]
        if not model_path.is_file():
            raise ModelError(f"the model file {model_path} named by the card is missing",
                             "re-download or re-train the model")
        size = model_path.stat().st_size
        if size != card["model_file"]["size_bytes"]:
            raise ModelError(f"the model file {model_path} has {size} bytes but the card says "
                             f"{card['model_file']['size_bytes']}", "the file is damaged or not this card's; re-download it")
        digest = sha256_file(model_path)
        if digest != card["model_file"]["sha256"]:
            raise ModelError(f"the sha256 of {model_path} ({digest[:12]}...) does not match the card "
                             f"({card['model_file']['sha256'][:12]}...)",
                             "the file is damaged or not this card's; re-download it")
    return card


def load_model_card(path: str | Path, check_file: bool = True) -> dict[str, Any]:
    """Read and validate a model card JSON file (and its model file when ``check_file``).

    Raises ModelError for a missing/unreadable file, invalid JSON, schema violations or a model
    file that does not match the card.
    """
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model card {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model card {path} cannot be read as JSON: {exc}") from None
    if not isinstance(card, dict):
        raise ModelError(f"model card {path} is not a JSON object")
    return validate_model_card(card, path.parent if check_file else None)


def write_model_card(card: dict[str, Any], path: str | Path, folder_check: bool = True) -> Path:
    """Validate ``card`` (against its model file in the same folder) and write it atomically."""
    path = Path(path)
    validate_model_card(card, path.parent if folder_check else None)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def load_model(card_path: str | Path, device: str = "cpu"):
    """Rebuild the network of a card and load its weights (``torch.load(weights_only=True)``).

    Returns ``(network in eval mode on device, card)``. Raises ModelError for an invalid card,
    a mismatching file, or weights that do not fit the network.
    """
    import torch

    from ..networks import build_network

    card_path = Path(card_path)
    card = load_model_card(card_path, check_file=True)
    net = card["network"]
    model = build_network(net["name"], net["in_channels"], net["out_channels"], **net["params"])
    try:
        state = torch.load(card_path.parent / card["model_file"]["path"], map_location=device, weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError, TypeError) as exc:
        raise ModelError(f"the weights of {card_path.parent / card['model_file']['path']} do not fit "
                         f"network {net['name']}: {str(exc).splitlines()[0]}") from None
    return model.to(device).eval(), card
