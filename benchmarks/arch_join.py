"""How well the unenhanced ascending aorta step joins the ascending aorta over the arch's top, against the
generator's exact labels.

On the real non-contrast CT (LIDC-IDRI-0002) the IMA/aorta network labels only the back part of the arch, and the
ascending aorta's circles give out at the turn into the arch; the step then joins the two over the arch's top
(:func:`CardiacAI.lumen_tracking.follow_unenhanced_ascending_aorta`). On the synthetic scans the network labels the
whole arch, so the join never runs there and the synthetic tables cannot say how good it is. This script makes the
real failure on synthetic non-contrast scans: it runs the one-click pipeline without the ascending step, finds the
arch in the generator's aorta (the slices above the highest one on which the true aorta crosses the slice twice, as
the ascending and the descending aorta), removes the network's aorta there that lies nearer the ascending aorta's
centre than the descending aorta's (the arch's front part, which LIDC-IDRI-0002's network missed), runs the step
with the join and without it (``arch_reach_mm`` 0), and scores on the arch's slices against the generator's aorta:

* Dice with the join, without it, and the network's own before the cut;
* the aorta's 26-connected pieces with and without the join (one: the aorta is one vessel), all of them and those
  of at least 0.1 mL (the cut may leave a few voxels of the arch's front at its top);
* the step's record (how its circles ended, and what the join did).

Usage: python benchmarks/arch_join.py [--protocols chest_noncontrast] [--seeds 800000 ...] [--spacing I,J,K]
       [--catalog CATALOG.json] [--json F]
Not a test: it describes the step on synthetic scans.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def arch_slices(truth: np.ndarray, pixel_mm2: float, min_section_mm2: float = 100.0) -> tuple[int, int, tuple, tuple]:
    """(the highest slice on which the true aorta (bool (K, J, I), axial slices, k towards the head) crosses the
    slice twice, at least ``min_section_mm2`` each; the true aorta's top slice; the ascending and the descending
    aorta's centres (row, column) on that slice; the ascending one is the front one, lower j)."""
    from scipy import ndimage as ndi

    for k in range(truth.shape[0] - 1, -1, -1):
        pieces, n = ndi.label(truth[k])
        if n < 2:
            continue
        areas = np.bincount(pieces.ravel())[1:] * pixel_mm2
        big = np.flatnonzero(areas >= min_section_mm2) + 1
        if big.size >= 2:
            centres = sorted(ndi.center_of_mass(truth[k], pieces, big))  # front (low j) first
            top = int(np.flatnonzero(truth.any(axis=(1, 2)))[-1])
            return k, top, centres[0], centres[-1]
    raise ValueError("the true aorta never crosses a slice twice")


def score_case(protocol: str, seed: int, catalog, spacing) -> dict:
    """Run the pipeline without the ascending step on one generated scan, cut the network's arch front, join and
    score (see the module docstring)."""
    from scipy import ndimage as ndi

    from aorta_following import segmented_case
    from CardiacAI.lumen_tracking import AortaFollowSettings, follow_unenhanced_ascending_aorta
    from CardiacAI.metrics import dice_coefficient as dice

    image, label_set, value, truth, labels = segmented_case(protocol, seed, catalog, spacing)
    if not np.allclose(image.direction, np.eye(3)):
        raise ValueError("expected the generator's LPS-aligned grid (k towards the head, j towards the back)")
    pixel_mm2 = float(spacing[0] * spacing[1])
    below, top, ascending, descending = arch_slices(truth, pixel_mm2)
    arch = slice(below + 1, top + 1)
    jj, ii = np.mgrid[0:labels.shape[1], 0:labels.shape[2]]
    nearer_front = (np.hypot((jj - ascending[0]) * spacing[1], (ii - ascending[1]) * spacing[0])
                    < np.hypot((jj - descending[0]) * spacing[1], (ii - descending[1]) * spacing[0]))
    network = labels == value
    cut = labels.copy()
    cut[arch][(cut[arch] == value) & nearer_front] = 0
    row = {"protocol": protocol, "seed": seed, "arch_slices": [arch.start, arch.stop - 1],
           "dice_network": round(dice(network[arch], truth[arch]), 3),
           "front_removed_ml": round(float(np.count_nonzero(network[arch] & nearer_front)) * pixel_mm2 * spacing[2]
                                     / 1000.0, 1)}
    for name, settings in (("joined", AortaFollowSettings()), ("not_joined", AortaFollowSettings(arch_reach_mm=0.0))):
        out, report = follow_unenhanced_ascending_aorta(cut, label_set, image.array, image.spacing, image.direction,
                                                        settings=settings)
        aorta = out == value
        pieces, n = ndi.label(aorta, np.ones((3, 3, 3), bool))
        ml = np.bincount(pieces.ravel())[1:] * pixel_mm2 * spacing[2] / 1000.0
        row[name] = {"dice": round(dice(aorta[arch], truth[arch]), 3), "pieces": int(n),
                     # the cut may leave a few voxels of the arch's front at its top: not counted here
                     "pieces_over_0_1_ml": int(np.count_nonzero(ml >= 0.1)),
                     "outside_truth_ml": round(float(np.count_nonzero(aorta[arch] & ~truth[arch])) * pixel_mm2
                                               * spacing[2] / 1000.0, 2),
                     "report": report.as_dict(spacing[2])}
    return row


def main(argv=None) -> int:
    from aorta_following import catalog_without_aorta_following
    from CardiacAI.models.catalog import DEFAULT_CATALOG_PATH

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocols", nargs="+", default=["chest_noncontrast"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[800000, 800001, 800002, 800003],
                    help="generator seeds (default: the tuning scans)")
    ap.add_argument("--spacing", default="0.703125,0.703125,2.5", help="voxel size i,j,k in mm (LIDC-IDRI-0001's)")
    ap.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG_PATH, help="catalog file (default: the packaged one)")
    ap.add_argument("--json", type=Path, help="write the rows as JSON too")
    args = ap.parse_args(argv)
    catalog = catalog_without_aorta_following(args.catalog, ("unenhanced_ascending_aorta",))
    spacing = tuple(float(v) for v in args.spacing.split(","))
    rows = []
    for protocol in args.protocols:
        for seed in args.seeds:
            row = score_case(protocol, seed, catalog, spacing)
            rows.append(row)
            j, n = row["joined"], row["not_joined"]
            print(f"{protocol} {seed}: arch slices {row['arch_slices']}, network Dice {row['dice_network']:.3f}, "
                  f"front removed {row['front_removed_ml']} mL; joined: Dice {j['dice']:.3f}, {j['pieces']} pieces "
                  f"({j['pieces_over_0_1_ml']} of 0.1 mL or more), {j['outside_truth_ml']} mL outside; not joined: "
                  f"Dice {n['dice']:.3f}, {n['pieces']} pieces ({n['pieces_over_0_1_ml']}); "
                  f"{j['report']['reason']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
