"""How much of the real internal mammary arteries (IMAs) of LIDC-IDRI-0001 the IMA/aorta pipeline labels.

No real scan here has IMA labels. The reference is each artery's track read off the scan: slice by slice, the
brightest voxel within 2 mm of the last one, from starting points placed by eye on the arteries
(`ima_real_probe.track`). The right one passes under a bright costal cartilage at slices 89-92, where that
simple tracker jumps onto the cartilage, so its track is read in two stretches, below (from slice 75) and
above (from slice 95); the picture written with --picture shows both tracks and the labels for checking by eye.

Runs one-click IMA/aorta segmentation (the catalog's default model, or --model / --catalog) and prints per artery:
the reference track's slices, the slices labelled before lumen tracking (the network's pieces after the anatomy
rules; from the run record) and after, the labelled slices within 3 mm of the track, and the labelled voxels
farther than 3 mm from it (a voxel on a slice the track does not reach counts as farther).

Usage: python benchmarks/ima_lumen_tracking.py [--model ID] [--catalog CATALOG.json] [--picture PNG]
Not a test: it describes one real scan.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ima_real_probe import REAL, STARTS, track  # noqa: E402
from model_choice import add_model_arguments, chosen_model  # noqa: E402

#: (start (k, j, i), slices) of each stretch of the reference tracks, read off the scan.
STRETCHES = {
    "left": [(STARTS["left"], range(55, 121))],
    "right": [(STARTS["right"], range(55, 89)), ((95, 148, 212), range(89, 111))],
}
VALUES = {"left": 1, "right": 2}
NEAR_MM = 3.0


def reference_tracks(hu: np.ndarray) -> dict[str, dict[int, tuple[int, int]]]:
    """side -> {slice k: (j, i)} of the artery's centre, from :data:`STRETCHES`."""
    out = {}
    for side, stretches in STRETCHES.items():
        points: dict[int, tuple[int, int]] = {}
        for start, ks in stretches:
            points.update({k: p for k, p in track(hu, start, k_range=ks).items() if k in ks})
        out[side] = points
    return out


def distances_mm(labels: np.ndarray, value: int, points, spacing_ijk) -> tuple[np.ndarray, np.ndarray]:
    """(slice k of each voxel labelled ``value``, its in-plane distance in mm to the track on that slice; inf
    where the track does not reach the slice)."""
    kk, jj, ii = np.nonzero(labels == value)
    d = np.full(kk.size, np.inf)
    for n, k in enumerate(kk):
        if int(k) in points:
            j, i = points[int(k)]
            d[n] = np.hypot((jj[n] - j) * spacing_ijk[1], (ii[n] - i) * spacing_ijk[0])
    return kk, d


def picture(path: Path, hu: np.ndarray, labels: np.ndarray, tracks, spacing_ijk) -> None:
    """Straightened views: for each artery, each slice's row through its track centre (20 mm either side)
    stacked along the body (the track at 0), without and with the labels on the two rows either side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    half = int(round(20.0 / spacing_ijk[0]))
    fig, axes = plt.subplots(1, 4, figsize=(12, 9))
    for n, side in enumerate(("right", "left")):
        points = tracks[side]
        ks = np.arange(min(points), max(points) + 1)
        strip = np.full((ks.size, 2 * half + 1), -1000.0)
        mask = np.zeros(strip.shape, bool)
        for row, k in enumerate(ks):
            j, i = points.get(int(k), points[min(points, key=lambda q: abs(q - k))])
            strip[row] = hu[k, j, i - half:i + half + 1]
            mask[row] = (labels[k, j - 2:j + 3, i - half:i + half + 1] == VALUES[side]).any(axis=0)
        aspect = spacing_ijk[2] / spacing_ijk[0]
        axes[2 * n].imshow(strip, cmap="gray", vmin=-200, vmax=500, origin="lower", aspect=aspect,
                           extent=(-half - 0.5, half + 0.5, ks[0] - 0.5, ks[-1] + 0.5))
        axes[2 * n].set_title(f"{side} IMA: scan", fontsize=10)
        axes[2 * n].set_ylabel("slice k (2.5 mm; up = superior)")
        axes[2 * n].set_xlabel("voxels (0.7 mm) from the track")
        ax = axes[2 * n + 1]
        ax.imshow(strip, cmap="gray", vmin=-200, vmax=500, origin="lower", aspect=aspect,
                  extent=(-half - 0.5, half + 0.5, ks[0] - 0.5, ks[-1] + 0.5))
        overlay = np.zeros(mask.shape + (4,))
        overlay[mask] = (1.0, 0.85, 0.0, 0.75)
        ax.imshow(overlay, origin="lower", aspect=aspect, extent=(-half - 0.5, half + 0.5, ks[0] - 0.5, ks[-1] + 0.5))
        ax.set_title(f"{side} IMA: labels (yellow)", fontsize=10)
        ax.set_xlabel("voxels (0.7 mm) from the track")
    fig.suptitle("LIDC-IDRI-0001: the IMAs straightened (each slice's row through the artery's track, "
                 "the track at 0; labels within 2 rows of it)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> int:
    from CardiacAI.io import read_image
    from CardiacAI.segmentation import segment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(ap)
    ap.add_argument("--picture", type=Path, help="write the straightened views to this PNG")
    args = ap.parse_args(argv)
    if not REAL.is_dir():
        print(f"LIDC-IDRI-0001 not found at {REAL}")
        return 1
    image = read_image(REAL)
    hu = image.array
    catalog, entry = chosen_model(args)
    result = segment(image, "ima-aorta", model_id=entry.id, version=entry.version, catalog=catalog,
                     prefer_gpu=False)
    labels = result.labelmap.array
    tracked = result.run.get("lumen_tracking", {})
    print(f"model {result.run['model']['id']} {result.run['model']['version']}; lumen tracking "
          f"{'on' if tracked else 'off'}")
    tracks = reference_tracks(hu)
    for side, points in tracks.items():
        key = f"{side}_internal_mammary_artery"
        kk, d = distances_mm(labels, VALUES[side], points, image.spacing)
        labelled = sorted({int(k) for k in kk})
        near = {int(k) for k in kk[d <= NEAR_MM]}
        before = tracked.get(key, {}).get("slices_before", len(labelled))
        print(f"{side} IMA: track slices {min(points)}-{max(points)} ({len(points)}); labelled "
              f"{before} slices before tracking, {len(labelled)} after"
              f"{f' ({labelled[0]}-{labelled[-1]})' if labelled else ''}; {len(near)} within {NEAR_MM:.0f} mm "
              f"of the track; voxels farther: {int(np.sum(d > NEAR_MM))} of {d.size}")
    if args.picture:
        picture(args.picture, hu, labels, tracks, image.spacing)
        print(f"picture: {args.picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
