"""Where the IMA/aorta model loses IMA Dice on synthetic test scans: false pieces or missed stretches.

Runs the one-click pipeline (the task's default model) on whole-chest synthetic test scans and prints,
per scan and IMA (L, R): Dice, the true and predicted voxel counts, how many predicted voxels lie more
than ``--far-mm`` from the true artery (false pieces) and how many true voxels lie more than that from any
prediction (missed stretches). HD95 is symmetric, so either kind makes it large.
Usage: python benchmarks/ima_error_kinds.py [--protocols cta chest_noncontrast] [--seeds 900000 900001 900002]
       [--far-mm 5]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

from CardiacAI.segmentation import segment
from CardiacAI.synthetic import GeneratorConfig, generate_case

IMAS = {"left_internal_mammary_artery": "L", "right_internal_mammary_artery": "R"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", nargs="+", default=["cta", "chest_noncontrast"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[900000, 900001, 900002])
    parser.add_argument("--far-mm", type=float, default=5.0)
    args = parser.parse_args()
    for protocol in args.protocols:
        for seed in args.seeds:
            case = generate_case(seed, GeneratorConfig(protocol=protocol, spacing_mm=(0.703125, 0.703125, 2.5),
                                                       fov="chest"))
            result = segment(case.image, "ima-aorta", prefer_gpu=False)
            truth, labels = case.task_labels("ima-aorta").array, result.labelmap.array
            spacing_kji = case.image.spacing[::-1]
            for key, side in IMAS.items():
                value = result.label_set.by_key(key).value
                t, p = truth == value, labels == value
                far_false = int(np.sum(p & (ndimage.distance_transform_edt(~t, sampling=spacing_kji) > args.far_mm)))
                missed = int(np.sum(t & (ndimage.distance_transform_edt(~p, sampling=spacing_kji) > args.far_mm)))
                dice = 2 * np.sum(t & p) / max(1, t.sum() + p.sum())
                print(f"{protocol} {seed} {side}: Dice {dice:.3f}, true {t.sum()} voxels, predicted {p.sum()}, "
                      f"predicted > {args.far_mm:g} mm from the artery {far_false}, "
                      f"true > {args.far_mm:g} mm from any prediction {missed} ({missed / max(1, t.sum()):.0%})",
                      flush=True)


if __name__ == "__main__":
    main()
