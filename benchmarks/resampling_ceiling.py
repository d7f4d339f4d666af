"""The Dice a perfect model could reach on a finer scan, given the model's own voxel size.

A model predicts on its grid (e.g. 1 x 1 x 2 mm for the IMA/aorta task) and its labels are taken back
onto the scan's grid (e.g. 0.7 x 0.7 x 2.5 mm). This script stands in for a perfect model: each class's
probability on the model grid is the fraction of the voxel the generator's label covers (the one-hot
truth resampled linearly, as the CT is), and it scores two ways back onto the scan grid against the
truth:
- "nearest": the model-grid argmax, nearest-neighbour resampled (what `segment` did until 2026-11-22);
- "trilinear": the argmax of the trilinearly resampled probabilities
  (`CardiacAI.inference.labels_from_probabilities_onto`, what `segment` does).
Thin structures (the IMAs, 2-3 mm) lose most to the model's voxel size.

``--targets`` adds what a perfect model of the training targets reaches: the same seed generated on the
model grid, its class probabilities either the 0/1 labels a model is trained on by default ("labels") or,
for the structures with partial-volume fractions (the IMAs), those fractions ("fractions", what
``cardiacai train --soft-targets`` learns), both trilinearly back onto the scan grid.
Usage: python benchmarks/resampling_ceiling.py [--task ima-aorta] [--model-spacing 1,1,2]
       [--spacing 0.703125,0.703125,2.5] [--seeds 800000 800001] [--protocol cta]
Not a test: it measures what a resolution allows, not what a model does.
"""

from __future__ import annotations

import argparse

import numpy as np

from CardiacAI.inference import (
    labels_from_probabilities,
    labels_from_probabilities_onto,
    resample_labels_onto,
    resample_to_spacing,
)
from CardiacAI.labels import get_label_set
from CardiacAI.metrics import dice_coefficient
from CardiacAI.synthetic import GeneratorConfig, generate_case


def _triple(text: str) -> tuple[float, float, float]:
    values = [float(v) for v in text.split(",")]
    return tuple(values * 3 if len(values) == 1 else values)  # type: ignore[return-value]


def ceiling(truth, model_spacing, values) -> dict[str, dict[int, float]]:
    """Dice per label value of a perfect model on ``model_spacing`` (mm, i, j, k), both ways back onto
    ``truth``'s grid; ``values`` the label values the model predicts (others count as background)."""
    arr = np.where(np.isin(truth.array, values), truth.array, 0)
    classes = [0, *values]
    fractions = [resample_to_spacing(truth.with_array((arr == v).astype(np.float32)), model_spacing)
                 for v in classes]
    grid = fractions[0]
    probs = np.stack([f.array for f in fractions])
    lookup = np.array(classes, np.uint8)
    nearest = lookup[resample_labels_onto(grid.with_array(labels_from_probabilities(probs)), truth).array]
    trilinear = lookup[labels_from_probabilities_onto(probs, grid, truth)]
    return {name: _dice_per_value(labels, arr, values) for name, labels in (("nearest", nearest), ("trilinear", trilinear))}


def _dice_per_value(labels: np.ndarray, truth: np.ndarray, values) -> dict[int, float]:
    """Dice of each label value between two label maps on one grid (CardiacAI.metrics.dice_coefficient)."""
    return {v: dice_coefficient(labels == v, truth == v) for v in values}


def target_ceiling(seed: int, truth, model_spacing, values, protocol: str) -> dict[str, dict[int, float]]:
    """Dice per label value on ``truth``'s grid of a perfect model of the training targets of ``seed``
    (generated on ``model_spacing``): its 0/1 labels, and its partial-volume fractions where kept."""
    from CardiacAI.training.engine import soft_target

    import torch

    case = generate_case(seed, GeneratorConfig(protocol=protocol, spacing_mm=model_spacing, fov="chest"))
    task = truth.metadata.get("task", "ima-aorta")
    classes = [0, *values]
    grid_labels = case.task_labels(task).array
    index = np.zeros(256, np.int64)
    index[classes] = np.arange(len(classes))
    label = torch.as_tensor(index[np.where(np.isin(grid_labels, values), grid_labels, 0)])[None, None]
    fractions = {classes.index(v): f.array for v, f in case.task_fractions(task).items() if v in values}
    hard = soft_target(label, torch.zeros((1, 0, *label.shape[2:])), [], len(classes))[0].numpy()
    soft_idx = sorted(fractions)
    soft = soft_target(label, torch.as_tensor(np.stack([fractions[i] for i in soft_idx]))[None], soft_idx,
                       len(classes))[0].numpy() if soft_idx else hard
    arr = np.where(np.isin(truth.array, values), truth.array, 0)
    lookup = np.array(classes, np.uint8)
    return {name: _dice_per_value(lookup[labels_from_probabilities_onto(probs, case.image, truth)], arr, values)
            for name, probs in (("labels", hard), ("fractions", soft))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="ima-aorta")
    parser.add_argument("--model-spacing", default="1,1,2")
    parser.add_argument("--spacing", default="0.703125,0.703125,2.5")
    parser.add_argument("--seeds", nargs="+", type=int, default=[800000, 800001])
    parser.add_argument("--protocol", default="cta")
    parser.add_argument("--targets", action="store_true",
                        help="also a perfect model of the training targets (0/1 labels, partial-volume fractions)")
    args = parser.parse_args()
    label_set = get_label_set(args.task)
    values = [s.value for s in label_set.structures if not s.derived_from]
    names = {s.value: s.key for s in label_set.structures}
    print(f"perfect model on {args.model_spacing} mm, scored on {args.spacing} mm ({args.task}, {args.protocol})")
    for seed in args.seeds:
        case = generate_case(seed, GeneratorConfig(protocol=args.protocol, spacing_mm=_triple(args.spacing), fov="chest"))
        truth = case.task_labels(args.task)
        result = ceiling(truth, _triple(args.model_spacing), values)
        if args.targets:
            result.update({f"targets: {k}": d for k, d in
                           target_ceiling(seed, truth, _triple(args.model_spacing), values, args.protocol).items()})
        for way, dice in result.items():
            print(f"seed {seed} {way:18s} " + ", ".join(f"{names[v]} {d:.3f}" for v, d in dice.items()))


if __name__ == "__main__":
    main()
