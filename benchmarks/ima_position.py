"""Where the internal mammary arteries (IMAs) lie: real LIDC-IDRI-0001 beside the generator.

Writes docs/images/segmentation/ima_real_vs_synthetic.png (two axial crops of the anterior chest
wall of each) and prints, for every 6th synthetic slice through the sternal body, each IMA's
distance from the sternal border (mm), its depth relative to the sternum's posterior surface (mm,
positive = behind) and how far behind it the lung starts (mm). The real figures quoted in
docs/synthetic.md were read off the LIDC-IDRI-0001 slices in the picture (0.703 mm pixels).

Usage: python benchmarks/ima_position.py [--seed 900001] [--out PNG]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from CardiacAI import synthetic  # noqa: E402
from CardiacAI.io import read_image  # noqa: E402
from CardiacAI.synthetic.anatomy_labels import ANATOMY_LABELS as L  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "chest-ct" / "LIDC-IDRI-0001"
#: LIDC-IDRI-0001 slices through the sternal body with both IMAs visible, and the crop (rows, columns).
REAL_SLICES, REAL_CROP = (75, 90), (slice(100, 200), slice(150, 360))


def synthetic_ima_geometry(case) -> list[dict]:
    """Per axial slice through the sternum and per IMA: lateral distance from the sternal border,
    depth behind the sternum's posterior surface and lung distance behind the artery (all mm,
    measured on the anatomy labels along the image rows, i.e. the LPS y axis)."""
    an = case.anatomy.array
    sx, sy = case.anatomy.spacing[:2]
    sternum = an == L["sternum"]
    rows = []
    for k in np.nonzero(sternum.any(axis=(1, 2)))[0]:
        jj, ii = np.nonzero(sternum[k])
        for side in ("left", "right"):
            j, i = np.nonzero(an[k] == L[f"{side}_internal_mammary_artery"])
            if not len(j):
                continue
            jc, ic = j.mean(), i.mean()
            lateral = (ic - ii.max()) if ic > ii.max() else (ii.min() - ic)
            behind = an[k, int(round(jc)):, int(round(ic))]
            lung = np.nonzero(behind == L["lung"])[0]
            rows.append(dict(k=int(k), side=side, lateral_mm=float(lateral * sx), depth_mm=float((jc - jj.max()) * sy),
                             lung_behind_mm=float(lung[0] * sy) if len(lung) else float("nan")))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=900001)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/images/segmentation/ima_real_vs_synthetic.png")
    args = ap.parse_args(argv)
    case = synthetic.generate_case(args.seed, synthetic.GeneratorConfig(
        protocol="chest_contrast", spacing_mm=(0.703125, 0.703125, 2.5), fov="chest"))
    rows = synthetic_ima_geometry(case)
    print(f"generator {synthetic.__version__}, seed {args.seed}, chest contrast at LIDC-IDRI-0001's voxel size")
    shown = sorted({r["k"] for r in rows})[::6]
    for r in (r for r in rows if r["k"] in shown):
        print(f"  slice {r['k']:3d} {r['side']:5s}: {r['lateral_mm']:5.1f} mm from the sternal border, "
              f"{r['depth_mm']:+5.1f} mm behind the sternum's back, lung {r['lung_behind_mm']:5.1f} mm behind")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(12, 6.5))
    if REAL.is_dir():
        real = read_image(REAL).array
        for n, k in enumerate(REAL_SLICES):
            ax[0, n].imshow(real[k][REAL_CROP], cmap="gray", vmin=-200, vmax=400)
            ax[0, n].set_title(f"LIDC-IDRI-0001 (real, contrast), slice {k}: IMAs = bright dots beside the sternum",
                               fontsize=9)
    a, an = case.image.array, case.anatomy.array
    sternum = an == L["sternum"]
    ks = np.nonzero(sternum.any(axis=(1, 2)))[0]
    ima = np.isin(an, [L["left_internal_mammary_artery"], L["right_internal_mammary_artery"]])
    for n, k in enumerate((ks[len(ks) // 2], ks[3 * len(ks) // 4])):
        jj, ii = np.nonzero(sternum[k])
        j0, i0 = int(jj.min()), int(ii.mean())
        crop = (slice(max(j0 - 40, 0), j0 + 60), slice(i0 - 105, i0 + 105))
        ax[1, n].imshow(a[k][crop], cmap="gray", vmin=-200, vmax=400)
        ax[1, n].contour(ima[k][crop], [0.5], colors="r", linewidths=0.6)
        ax[1, n].set_title(f"generator {synthetic.__version__} (chest contrast, same voxel size), slice {k}: "
                           "IMAs outlined", fontsize=9)
    for x in ax.ravel():
        x.axis("off")
    plt.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plt.savefig(args.out, dpi=72)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
