"""Plots of a training log (``training_log.jsonl``): losses and validation Dice per structure vs time.

``python -m CardiacAI.training.plots LOG OUT_PREFIX`` writes ``OUT_PREFIX_loss.png`` and
``OUT_PREFIX_dice.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputError
from ..io.atomic import atomic_output


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL training log. Raises InputError when it is missing or not JSONL."""
    path = Path(path)
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise InputError(f"training log {path} not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not a JSONL training log: {exc}") from None


def plot_training_log(log_path: str | Path, out_prefix: str | Path) -> list[Path]:
    """Write ``<out_prefix>_loss.png`` (train loss, smoothed, and validation loss vs minutes) and
    ``<out_prefix>_dice.png`` (validation Dice per structure and mean vs minutes). Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    records = read_log(log_path)
    train = [r for r in records if r["event"] == "train"]
    val = [r for r in records if r["event"] == "val"]
    if not val:
        raise InputError(f"training log {log_path} has no validation records to plot")
    out_prefix = Path(out_prefix)
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        t = np.array([r["time_s"] for r in train]) / 60
        loss = np.array([r["loss"] for r in train])
        window = max(1, len(loss) // 40)
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(t, loss, color="0.8", lw=0.5, label="train loss (per step)")
        ax.plot(t[window - 1:], smooth, color="C0", label=f"train loss (mean of {window} steps)")
    ax.plot([r["time_s"] / 60 for r in val], [r["val_loss"] for r in val], "o-", color="C3",
            label="validation loss (whole cases)")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("Dice + cross-entropy loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(_save(fig, Path(f"{out_prefix}_loss.png")))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    keys = list(val[-1]["dice"])
    minutes = [r["time_s"] / 60 for r in val]
    for n, key in enumerate(keys):
        values = [np.nan if r["dice"].get(key) is None else r["dice"][key] for r in val]
        ax.plot(minutes, values, ".-", color=plt.cm.tab10(n % 10), lw=1, label=key)
    ax.plot(minutes, [np.nan if r["mean_dice"] is None else r["mean_dice"] for r in val], "k-", lw=2.5,
            label="mean")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("validation Dice")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(_save(fig, Path(f"{out_prefix}_dice.png")))
    plt.close(fig)
    return paths


def _save(fig, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path


if __name__ == "__main__":  # pragma: no cover - small helper entry point
    for p in plot_training_log(sys.argv[1], sys.argv[2]):
        print(p)
