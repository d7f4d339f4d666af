"""What following the unenhanced aorta does on the real non-contrast CT (LIDC-IDRI-0002).

The IMA/aorta network draws LIDC-IDRI-0002's descending aorta thin (a 6-9 mm radius in a 11-12 mm aorta) and
leaves a gap in it just above the diaphragm; of its ascending aorta (about 35 mm across) it finds only a thin core.
The pipeline follows the unenhanced descending aorta down as the circle fitting its edge with the fat and the lung
(:func:`CardiacAI.lumen_tracking.follow_descending_aorta`) and draws the ascending aorta as the circle fitting its
edge (:func:`CardiacAI.lumen_tracking.follow_unenhanced_ascending_aorta`), then joins it over the arch's top to the
network's arch where the circles give out at the turn. This script runs the one-click pipeline with one of those
steps off (``--step``: the catalog's ``lumen_tracking.descending_aorta`` or ``unenhanced_ascending_aorta`` removed;
``arch``: the ascending step without its join over the arch) and with every step on, and reports for both:

* the slices of the descending aorta's largest 3D piece (from the arch down) and the slices with no aorta between
  the arch and the network's lowest slice (gaps);
* on each slice where the two differ, the equivalent diameter (mm) of the cross-section the step changed, and the
  added voxels' HU;
* the aorta's volume (mL) and the follower's record.

No reference labels exist for this scan; ``--pictures`` writes axial crops of the slices where the two differ
(without the step: red, with it: yellow), which are how the result was reviewed.

Usage: python benchmarks/real_aorta_unenhanced.py [--step descending|ascending|arch] [--scan DICOM_DIR] [--pictures DIR]
       [--json F]
Not a test: it describes one real scan.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "chest-ct" / "LIDC-IDRI-0002"
#: --step: (the catalog's lumen_tracking part switched off in the baseline, what the pictures show)
#: ("arch": the ascending step's join over the arch's top, switched off by a zero ``arch_reach_mm``)
STEPS = {"descending": ("descending_aorta", "descending aorta"),
         "ascending": ("unenhanced_ascending_aorta", "ascending aorta"),
         "arch": ("unenhanced_ascending_aorta", "arch joined over its top")}


def describe(aorta: np.ndarray, spacing_ijk) -> dict:
    """The descending aorta's extent and gaps in a bool (K, J, I) aorta mask (axial slices, k towards the head)."""
    from scipy import ndimage as ndi

    pieces, n = ndi.label(aorta)
    sizes = np.bincount(pieces.ravel())[1:]
    largest = pieces == int(np.argmax(sizes)) + 1
    ks = np.flatnonzero(largest.any(axis=(1, 2)))
    held = aorta.any(axis=(1, 2))
    lowest = int(np.flatnonzero(held)[0])
    gaps = [int(k) for k in range(lowest, int(ks.max())) if not held[k]]
    voxel_ml = float(np.prod(spacing_ijk)) / 1000.0
    return {"largest_piece_slices": [int(ks.min()), int(ks.max())], "pieces": int(n),
            "empty_slices_between": gaps, "volume_ml": round(float(aorta.sum()) * voxel_ml, 1)}


def main(argv=None) -> int:
    from aorta_following import catalog_without_aorta_following
    from CardiacAI.io import read_image
    from CardiacAI.models.catalog import DEFAULT_CATALOG_PATH
    from CardiacAI.segmentation import segment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", choices=sorted(STEPS), default="descending", help="the step switched off in the "
                    "baseline (default: descending)")
    ap.add_argument("--scan", type=Path, default=DEFAULT_SCAN)
    ap.add_argument("--pictures", type=Path, help="folder for the review pictures")
    ap.add_argument("--json", type=Path, help="write the results as JSON too")
    args = ap.parse_args(argv)
    if not args.scan.exists():
        raise SystemExit(f"no scan at {args.scan}: pass --scan with LIDC-IDRI-0002's DICOM folder")
    image = read_image(args.scan)
    pixel_mm2 = float(image.spacing[0] * image.spacing[1])
    part, _ = STEPS[args.step]
    if args.step == "arch":
        with _without_the_arch_join():
            baseline = segment(image, "ima-aorta", prefer_gpu=False)
    else:
        baseline = segment(image, "ima-aorta", catalog=catalog_without_aorta_following(DEFAULT_CATALOG_PATH, (part,)),
                           prefer_gpu=False)
    runs = {"network": baseline, "followed": segment(image, "ima-aorta", prefer_gpu=False)}
    masks = {name: r.labelmap.array == r.label_set.by_key("aorta").value for name, r in runs.items()}
    out = {name: describe(mask, image.spacing) for name, mask in masks.items()}
    out["record"] = runs["followed"].run["lumen_tracking"][part]
    changed = np.flatnonzero((masks["network"] != masks["followed"]).any(axis=(1, 2)))
    out["diameters_mm"] = {int(k): _diameters(masks["network"][k], masks["followed"][k], pixel_mm2) for k in changed}
    added = masks["followed"] & ~masks["network"]
    if added.any():
        hu = image.array[added]
        out["added_hu"] = {"median": float(np.median(hu)), "below_minus_30": round(float(np.mean(hu < -30)), 3)}
    for name in ("network", "followed"):
        d = out[name]
        print(f"{name:9s}: largest piece slices {d['largest_piece_slices']}, {d['pieces']} pieces, "
              f"{len(d['empty_slices_between'])} empty slices between, {d['volume_ml']} mL")
    print("record:", json.dumps(out["record"]))
    print("added voxels:", out.get("added_hu"))
    for k, (a, b) in out["diameters_mm"].items():
        print(f"slice {k}: equivalent diameter {a} -> {b} mm")
    if args.pictures and changed.size:
        _pictures(image.array, masks, changed, args.pictures / f"real-aorta-unenhanced-{args.step}-followed.png",
                  STEPS[args.step][1])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


@contextlib.contextmanager
def _without_the_arch_join():
    """The pipeline's unenhanced ascending aorta step without its join over the arch (``arch_reach_mm`` 0)."""
    from CardiacAI import lumen_tracking as lt

    followers = lt.AORTA_FOLLOWERS
    original = followers["unenhanced_ascending_aorta"]
    followers["unenhanced_ascending_aorta"] = functools.partial(
        original, settings=lt.AortaFollowSettings(arch_reach_mm=0.0))
    try:
        yield
    finally:
        followers["unenhanced_ascending_aorta"] = original


def _diameters(before: np.ndarray, after: np.ndarray, pixel_mm2: float) -> list[float]:
    """Equivalent diameters (mm) on one slice of the cross-section the step changed (the piece of ``after`` holding
    most of the added voxels) without and with the step (the part of it ``before`` holds)."""
    from scipy import ndimage as ndi

    pieces, _ = ndi.label(after)
    piece = pieces == int(np.argmax(np.bincount(pieces[after & ~before], minlength=pieces.max() + 1)[1:])) + 1
    return [round(2 * float(np.sqrt(area * pixel_mm2 / np.pi)), 1) for area in ((before & piece).sum(), piece.sum())]


def _pictures(hu, masks, changed, path: Path, what: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = changed[np.linspace(0, changed.size - 1, 12).round().astype(int)][::-1]
    centre = np.argwhere(masks["followed"][ks] & ~masks["network"][ks]).mean(axis=0).round().astype(int)[1:]
    window = tuple(slice(max(c - 60, 0), c + 60) for c in centre)
    fig, axes = plt.subplots(2, 6, figsize=(18, 6.6))
    for ax, k in zip(axes.flat, ks):
        ax.imshow(hu[k][window], cmap="gray", vmin=-200, vmax=250)
        ax.contour(masks["followed"][k][window], [0.5], colors="yellow", linewidths=0.9)
        ax.contour(masks["network"][k][window], [0.5], colors="red", linewidths=0.7)
        ax.set_title(f"slice {k}")
        ax.axis("off")
    fig.suptitle(f"LIDC-IDRI-0002 {what}: without the step (red), with it (yellow)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
