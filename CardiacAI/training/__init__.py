"""Training CardiacAI segmentation models on synthetic cardiac CT (``cardiacai train``).

Public API::

    from CardiacAI.training import TrainingConfig, GeneratorSettings, train
    result = train(TrainingConfig(task="whole-heart", network="densevnet", steps=500), "runs/wh")
    # -> runs/wh/model.pt, model_card.json, training_log.jsonl, checkpoint.pt

    from CardiacAI.training import load_model_card, load_model
    model, card = load_model("runs/wh/model_card.json")
"""

import importlib

# Submodule of each public name. Imported on first use (PEP 562), so that `cardiacai info` and the
# subcommand parser do not pay for importing torch and MONAI.
_EXPORTS = {
    "GeneratorSettings": "config", "TrainingConfig": "config",
    "CaseSource": "data", "CaseStore": "data", "GeneratorCaseSource": "data", "PreparedCase": "data",
    "TrainingResult": "engine", "train": "engine",
    "card_schema": "model_card", "load_model": "model_card", "load_model_card": "model_card",
    "sha256_file": "model_card", "validate_model_card": "model_card", "write_model_card": "model_card",
    "normalise_intensity": "preprocessing", "to_model_grid": "preprocessing",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CaseSource",
    "CaseStore",
    "GeneratorCaseSource",
    "GeneratorSettings",
    "PreparedCase",
    "TrainingConfig",
    "TrainingResult",
    "card_schema",
    "load_model",
    "load_model_card",
    "normalise_intensity",
    "sha256_file",
    "to_model_grid",
    "train",
    "validate_model_card",
    "write_model_card",
]
