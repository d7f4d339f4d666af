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
    out = {}
    for name, labels in (("nearest", nearest), ("trilinear", trilinear)):
        out[name] = {v: float(2 * np.sum((arr == v) & (labels == v)) / max(1, np.sum(arr == v) + np.sum(labels == v)))
                     for v in values}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="ima-aorta")
    parser.add_argument("--model-spacing", default="1,1,2")
    parser.add_argument("--spacing", default="0.703125,0.703125,2.5")
    parser.add_argument("--seeds", nargs="+", type=int, default=[800000, 800001])
    parser.add_argument("--protocol", default="cta")
    args = parser.parse_args()
    label_set = get_label_set(args.task)
    values = [s.value for s in label_set.structures if not s.derived_from]
    names = {s.value: s.key for s in label_set.structures}
    print(f"perfect model on {args.model_spacing} mm, scored on {args.spacing} mm ({args.task}, {args.protocol})")
    for seed in args.seeds:
        case = generate_case(seed, GeneratorConfig(protocol=args.protocol, spacing_mm=_triple(args.spacing), fov="chest"))
        result = ceiling(case.task_labels(args.task), _triple(args.model_spacing), values)
        for way, dice in result.items():
            print(f"seed {seed} {way:9s} " + ", ".join(f"{names[v]} {d:.3f}" for v, d in dice.items()))


if __name__ == "__main__":
    main()
