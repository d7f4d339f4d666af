"""Tiny untrained models with valid model cards, for plumbing tests (geometry, nodes, outputs, cancel).

They have random weights: tests that use them must never claim anything about accuracy.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

import numpy as np
import torch

from CardiacAI.labels import get_label_set
from CardiacAI.networks import build_network
from CardiacAI.training.model_card import sha256_file, write_model_card


def write_random_model(folder: Path, task: str, seed: int, spacing_mm: float = 4.0) -> Path:
    """A tiny random-weight U-Net and its (schema-valid) model card; returns the card path."""
    folder.mkdir(parents=True)
    label_set = get_label_set(task)
    params = {"channels": [4, 8, 16], "strides": [2, 2]}
    torch.manual_seed(seed)
    net = build_network("unet", 1, len(label_set) + 1, **params)
    torch.save(net.state_dict(), folder / "model.pt")
    card = {
        "schema_version": 1,
        "name": f"random-{task}",
        "created": "2025-01-01T00:00:00Z",
        "task": task,
        "description": "untrained random weights for plumbing tests; no accuracy whatsoever",
        "labels": [{"value": s.value, "key": s.key, "name": s.name} for s in label_set],
        "input": {
            "channels": 1,
            "spacing_mm": [spacing_mm] * 3,
            "orientation": {"coordinate_system": "LPS", "direction": np.eye(3).tolist(), "array_axes": "k,j,i"},
            "intensity": {"unit": "HU", "window": [-1000, 1000], "output_range": [0, 1], "clip": True,
                          "method": "linear"},
            "patch_size": [8, 8, 8],
            "divisible_by": 4,
            "sliding_window_overlap": 0.25,
        },
        "network": {"name": "unet", "params": params, "in_channels": 1, "out_channels": len(label_set) + 1,
                    "parameter_count": sum(p.numel() for p in net.parameters())},
        "model_file": {"path": "model.pt", "format": "torch-state-dict",
                       "size_bytes": (folder / "model.pt").stat().st_size, "sha256": sha256_file(folder / "model.pt")},
        "training": {"command": "none (random initialisation)", "config": {}, "generator": {}, "train_seeds": [],
                     "validation_seeds": [0], "steps": 0, "stopped_because": "steps", "training_time_s": 0.0,
                     "machine": {"device": "cpu", "cpu": platform.processor() or "cpu", "threads": 1,
                                 "torch": torch.__version__, "monai": importlib.metadata.version("monai"),
                                 "python": platform.python_version()}},
        "metrics": {"validation_seeds": [0], "best_step": 0, "val_loss": 0.0, "mean_dice": None, "dice": {}},
    }
    return write_model_card(card, folder / "model_card.json")
