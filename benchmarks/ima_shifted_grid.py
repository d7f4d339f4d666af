"""Test-time augmentation by translation for the IMA/aorta model: does a second pass on a grid shifted by half a model
voxel help the internal mammary arteries (IMAs)?

An IMA is 2-3 voxels of the 1 x 1 x 2 mm model grid, so where the grid's voxels fall on it decides much of its edge.
Here the network also runs on the model grid moved by half a voxel on every axis (i, j, k), over the same region
(the midline band), and every scan voxel gets the argmax of the mean of the two passes' trilinearly interpolated
class probabilities (after the unenhanced-scan class weights, decided on the first pass as the pipeline does).
The rest of the pipeline (post-processing, perivascular regions) is unchanged.

Prints, per synthetic scan and structure, the Dice of the pipeline as it is and with the second pass; then, on the
real CTs, the voxels each gives the aorta and the IMAs and, on LIDC-IDRI-0001, how many slices of each real IMA's
track (benchmarks/ima_real_probe.py) it labels. Docs: docs/segmentation.md (2026-11-22, seventh session).
Usage: python benchmarks/ima_shifted_grid.py [--protocols cta chest_contrast chest_noncontrast]
       [--seeds 800000 800001 800002] [--shift 0.5 0.5 0.5] [--no-real]
Not a test: a measurement on the default model (about 30 s per synthetic scan on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import CardiacAI.segmentation as seg  # noqa: E402
from CardiacAI.image import Image  # noqa: E402
from CardiacAI.inference import labels_from_probabilities  # noqa: E402
from CardiacAI.metrics import dice_coefficient  # noqa: E402
from CardiacAI.training.preprocessing import to_model_grid  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "chest-ct"
KEYS = ("aorta", "left_internal_mammary_artery", "right_internal_mammary_artery")
ONE_PASS = seg.predict_labels


def shifted_grid(image: Image, grid: Image, shift_ijk) -> Image:
    """The CT resampled (linear) onto ``grid`` moved by ``shift_ijk`` voxels, as to_model_grid resamples it."""
    import SimpleITK as sitk

    origin = (grid.ijk_to_lps @ np.append(np.asarray(shift_ijk, float), 1.0))[:3]
    out = sitk.Resample(sitk.Cast(image.to_sitk(), sitk.sitkFloat32), [int(n) for n in grid.shape_ijk],
                        sitk.Transform(), sitk.sitkLinear, tuple(origin), tuple(grid.spacing),
                        tuple(np.eye(3).ravel()), float(image.array.min()))
    return Image(np.round(sitk.GetArrayFromImage(out)).astype(np.int16), spacing=grid.spacing, origin=tuple(origin),
                 direction=np.eye(3), modality="CT")


def probabilities_onto(probs: np.ndarray, grid: Image, reference: Image) -> np.ndarray:
    """Every class of ``probs`` trilinearly interpolated at every voxel centre of ``reference``: (C, K, J, I)."""
    k, j, i = (a.ravel() for a in np.indices(reference.array.shape))
    to_model = np.linalg.inv(grid.ijk_to_lps) @ reference.ijk_to_lps
    coords = (to_model[:3, :3] @ np.stack([i, j, k]) + to_model[:3, 3:])[::-1]
    return np.stack([ndimage.map_coordinates(p, coords, order=1, mode="nearest", prefilter=False)
                     .reshape(reference.array.shape) for p in probs])


def two_pass_predictor(shift_ijk):
    def predict_labels(image, entry, network, device, **kwargs):
        if entry.task != "ima-aorta":
            return ONE_PASS(image, entry, network, device, **kwargs)
        kwargs.pop("progress_range", None)
        grid, first = seg.predict_model_grid_probabilities(image, entry, network, device, **kwargs)
        weights, decision = seg.unenhanced_class_weights(first, grid, entry)
        moved = shifted_grid(image, grid, shift_ijk)
        second = seg.predict_model_grid_probabilities(moved, entry, network, device, **kwargs)[1]
        # the moved grid is already a model grid: to_model_grid returns it as it is
        assert to_model_grid(moved, entry.input_spacing_mm) is moved
        mean = (probabilities_onto(first, grid, image) + probabilities_onto(second, moved, image)) / 2
        for value, weight in weights.items():
            mean[value] *= weight
        return image.with_array(labels_from_probabilities(mean), modality="",
                                metadata={"contrast_decision": decision} if decision else {})
    return predict_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", nargs="+", default=["cta", "chest_contrast", "chest_noncontrast"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[800000, 800001, 800002])
    parser.add_argument("--shift", nargs=3, type=float, default=[0.5, 0.5, 0.5], help="voxels (i, j, k)")
    parser.add_argument("--no-real", action="store_true", help="skip the real CTs")
    args = parser.parse_args()
    from CardiacAI.synthetic import GeneratorConfig, generate_case

    two_pass = two_pass_predictor(args.shift)
    sums = {key: [0.0, 0.0] for key in KEYS}
    print(f"{'scan':28s} " + "  ".join(f"{key[:14]:>14s} one/two" for key in KEYS))
    for protocol in args.protocols:
        for seed in args.seeds:
            case = generate_case(seed, GeneratorConfig(protocol=protocol, spacing_mm=(0.703125, 0.703125, 2.5),
                                                       fov="chest"))
            truth = case.task_labels("ima-aorta").array
            row = []
            for n, predictor in enumerate((ONE_PASS, two_pass)):
                seg.predict_labels = predictor
                result = seg.segment(case.image, "ima-aorta", prefer_gpu=False)
                values = {s.key: s.value for s in result.label_set.structures}
                row.append([dice_coefficient(result.labelmap.array == values[k], truth == values[k]) for k in KEYS])
                for key, d in zip(KEYS, row[-1]):
                    sums[key][n] += d
            print(f"{protocol + ' ' + str(seed):28s} " + "  ".join(f"{a:14.3f} {b:.3f}" for a, b in zip(*row)),
                  flush=True)
    scans = len(args.protocols) * len(args.seeds)
    print(f"{'mean':28s} " + "  ".join(f"{a / scans:14.3f} {b / scans:.3f}" for a, b in sums.values()))
    if args.no_real or not REAL.is_dir():
        return
    from ima_real_probe import STARTS, track

    from CardiacAI.io import read_image

    for case in ("LIDC-IDRI-0001", "LIDC-IDRI-0002"):
        image = read_image(REAL / case)
        for name, predictor in (("one pass", ONE_PASS), ("two passes", two_pass)):
            seg.predict_labels = predictor
            result = seg.segment(image, "ima-aorta", prefer_gpu=False)
            labels, values = result.labelmap.array, {s.key: s.value for s in result.label_set.structures}
            line = f"{case} {name:10s} voxels: " + ", ".join(f"{k} {(labels == values[k]).sum()}" for k in KEYS)
            if case == "LIDC-IDRI-0001":
                for side in ("left", "right"):
                    value = values[f"{side}_internal_mammary_artery"]
                    points = track(image.array, STARTS[side], k_range=range(image.array.shape[0]))
                    hits = sum((labels[k, max(j - 3, 0):j + 4, max(i - 3, 0):i + 4] == value).any()
                               for k, (j, i) in points.items())
                    line += f"; {side} IMA track {hits}/{len(points)} slices"
            print(line, flush=True)


if __name__ == "__main__":
    main()
