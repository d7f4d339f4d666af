"""The right atrium's blood with contrast: real LIDC-IDRI-0001 beside the generator's test scans.

Real: LIDC-IDRI-0001 has no heart labels, so the atrium is read in a box placed by eye inside it on axial
slices 54-62 (rows j 185-235, columns i 228-261: between the liver dome, at i < 220 on these slices, and the
right ventricle; checked on axial and coronal slices, and the picture written with --picture shows it), over
the voxels above -50 HU (blood, not the fat at its edge); the left ventricle in a box inside its cavity
(slices 58-65, j 215-250, i 300-340). Synthetic: the generator's right-atrium label eroded by one voxel, and
its left-ventricle cavity, on test scans at LIDC-IDRI-0001's voxel size. Prints the 5th, 25th, 50th, 75th and
95th HU percentiles of each, and the left ventricle's median.

Usage: python benchmarks/right_atrium_appearance.py [--seeds 900000 900001 900002] [--picture PNG]
Not a test: it describes one real scan and a few synthetic ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from CardiacAI.io import read_image
from CardiacAI.synthetic import ANATOMY_LABELS, GeneratorConfig, generate_case

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest-ct" / "LIDC-IDRI-0001"
RA_BOX_KJI = (slice(54, 63), slice(185, 236), slice(228, 262))
LV_BOX_KJI = (slice(58, 66), slice(215, 251), slice(300, 341))
BLOOD_ABOVE_HU = -50.0
PERCENTILES = (5, 25, 50, 75, 95)


def line(name: str, values: np.ndarray, lv_median: float) -> str:
    p = np.percentile(values, PERCENTILES)
    return (f"{name}: right atrium {' / '.join(f'{v:.0f}' for v in p)} HU (percentiles {PERCENTILES}), "
            f"left ventricle median {lv_median:.0f} HU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[900000, 900001, 900002])
    parser.add_argument("--protocols", nargs="+", default=["chest_contrast", "cta"])
    parser.add_argument("--picture", type=Path, help="write the real boxes on slice 58 to this PNG")
    args = parser.parse_args()
    if REAL.is_dir():
        ct = read_image(REAL)
        box = ct.array[RA_BOX_KJI].astype(float)
        print(line("LIDC-IDRI-0001 (box)", box[box > BLOOD_ABOVE_HU], float(np.median(ct.array[LV_BOX_KJI]))))
        if args.picture:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.patches import Rectangle

            fig, ax = plt.subplots(figsize=(6, 6))
            ax.imshow(ct.array[58, 150:300, 150:375], cmap="gray", vmin=-200, vmax=800,
                      extent=(149.5, 374.5, 299.5, 149.5))
            for (_, j, i), colour in ((RA_BOX_KJI, "cyan"), (LV_BOX_KJI, "yellow")):
                ax.add_patch(Rectangle((i.start - 0.5, j.start - 0.5), i.stop - i.start, j.stop - j.start,
                                       fill=False, edgecolor=colour))
            ax.set_title("LIDC-IDRI-0001 slice 58: right atrium (cyan), left ventricle (yellow)")
            fig.savefig(args.picture, dpi=80, bbox_inches="tight")
    else:
        print(f"{REAL} not found: the real scan is skipped")
    for protocol in args.protocols:
        for seed in args.seeds:
            case = generate_case(seed, GeneratorConfig(protocol=protocol, fov="chest",
                                                       spacing_mm=(0.703125, 0.703125, 2.5)))
            a, hu = case.anatomy.array, case.image.array
            ra = ndimage.binary_erosion(a == ANATOMY_LABELS["right_atrium"])
            lv = ndimage.binary_erosion(a == ANATOMY_LABELS["left_ventricle_cavity"])
            print(line(f"generator {case.parameters['version']} {protocol} seed {seed}", hu[ra].astype(float),
                       float(np.median(hu[lv]))))


if __name__ == "__main__":
    main()
