"""What surrounds the internal mammary arteries (IMAs): real LIDC-IDRI-0001 beside the generator's test scans.

For each axial slice of an artery, a ring 2-4 mm from its centre (in-plane) is read on the CT: the fraction of
lung (below -500 HU) and the median HU; and the tissue 2-8 mm in front of it (the median of a 3-voxel-wide
column): the fraction of slices where it reads cartilage or bone (above 150 HU), muscle (-30 to 150 HU) or fat
(below -30 HU). Real: the two arteries of LIDC-IDRI-0001, tracked slice by slice as the brightest voxel near a
point read off the scan (``benchmarks/ima_real_probe.py``). Synthetic: the generator's IMA
labels on whole-chest CTA test scans at LIDC-IDRI-0001's voxel size, on the slices through the sternum.
Prints per artery the median and interquartile range over its slices.

Usage: python benchmarks/ima_surroundings.py [--seeds 900000 900001 900002]
Not a test: it describes one real scan and a few synthetic ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ima_real_probe import REAL, STARTS, track  # noqa: E402

from CardiacAI.io import read_image  # noqa: E402
from CardiacAI.synthetic import ANATOMY_LABELS, GeneratorConfig, generate_case  # noqa: E402

RING_MM = (2.0, 4.0)
LUNG_BELOW_HU = -500.0
FRONT_MM = (2.0, 8.0)


def ring_values(hu: np.ndarray, k: int, j: int, i: int, spacing_ij: tuple[float, float]) -> np.ndarray:
    """HU of slice ``k`` of ``hu`` (K, J, I) at the pixels whose centres lie RING_MM (mm) from (j, i)."""
    sx, sy = spacing_ij
    n = int(np.ceil(RING_MM[1] / min(sx, sy))) + 1
    jj, ii = np.mgrid[-n:n + 1, -n:n + 1]
    d = np.hypot(jj * sy, ii * sx)
    return hu[k, j - n:j + n + 1, i - n:i + n + 1][(d > RING_MM[0]) & (d <= RING_MM[1])]


def front_value(hu: np.ndarray, k: int, j: int, i: int, spacing_j: float) -> float:
    """Median HU of slice ``k`` of ``hu`` (K, J, I) FRONT_MM (mm) in front of (j, i) (anterior: smaller j),
    over the columns i-1..i+1."""
    near, far = int(round(FRONT_MM[0] / spacing_j)), int(round(FRONT_MM[1] / spacing_j))
    return float(np.median(hu[k, j - far:j - near + 1, i - 1:i + 2]))


def describe(name: str, rings: list[np.ndarray], fronts: list[float]) -> None:
    lung = np.array([np.mean(r < LUNG_BELOW_HU) for r in rings])
    median_hu = np.array([np.median(r) for r in rings])
    front = np.asarray(fronts)
    print(f"{name}: {len(rings)} slices, lung fraction median {np.median(lung):.2f} "
          f"(IQR {np.percentile(lung, 25):.2f}-{np.percentile(lung, 75):.2f}), ring median {np.median(median_hu):.0f} HU; "
          f"{FRONT_MM[0]:.0f}-{FRONT_MM[1]:.0f} mm in front: cartilage/bone {np.mean(front > 150):.2f}, "
          f"muscle {np.mean((front > -30) & (front <= 150)):.2f}, fat {np.mean(front <= -30):.2f} of slices")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[900000, 900001, 900002])
    args = parser.parse_args()
    if not REAL.is_dir():
        print(f"LIDC-IDRI-0001 not found at {REAL}")
        return 1
    image = read_image(REAL)
    hu = image.array.astype(np.float32)
    for side, start in STARTS.items():
        points = track(hu, start).items()
        describe(f"LIDC-IDRI-0001 {side} IMA", [ring_values(hu, k, j, i, image.spacing[:2]) for k, (j, i) in points],
                 [front_value(hu, k, j, i, image.spacing[1]) for k, (j, i) in points])
    for seed in args.seeds:
        case = generate_case(seed, GeneratorConfig(protocol="cta", spacing_mm=image.spacing, fov="chest"))
        labels, ct = case.anatomy.array, case.image.array.astype(np.float32)
        sternum = (labels == ANATOMY_LABELS["sternum"]).any(axis=(1, 2))
        for side in ("left", "right"):
            artery = labels == ANATOMY_LABELS[f"{side}_internal_mammary_artery"]
            rings, fronts = [], []
            for k in np.nonzero(artery.any(axis=(1, 2)) & sternum)[0]:
                j, i = np.round(np.argwhere(artery[k]).mean(axis=0)).astype(int)
                rings.append(ring_values(ct, k, j, i, case.image.spacing[:2]))
                fronts.append(front_value(ct, k, j, i, case.image.spacing[1]))
            describe(f"generator {case.parameters['version']} seed {seed} {side} IMA", rings, fronts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
