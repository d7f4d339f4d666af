"""How well following the descending aorta (CardiacAI.lumen_tracking.follow_descending_aorta) draws the
abdominal aorta where the network stops, measured against the generator's exact labels.

On the real contrast CT (LIDC-IDRI-0001) the IMA/aorta network stops the aorta at the diaphragm; on the
synthetic scans it labels the aorta down to the scan's lower edge, so the follower has nothing to add there and
the synthetic tables cannot say how good its drawing is. This script makes the real failure on synthetic scans:
it runs the one-click pipeline (lumen tracking of the descending aorta off, whatever the catalog says), removes
the aorta the network labelled below a cut ``--cut-mm`` above the scan's lower edge, follows the aorta down from
the cut, and scores, on the slices below the cut against the generator's aorta:

* the follower's Dice, and the network's own Dice on the same slices (what the network does where it works);
* the slices the follower reached (of those below the cut on which the generator has aorta) and why it stopped;
* the follower's Dice on the slices it drew on (how well it draws where it goes).

With ``--gap-mm`` only that length below the cut is removed: a gap in the network's aorta, as on the real
non-contrast CT (LIDC-IDRI-0002), which the follower bridges down into the network's aorta below; the scores
are then over the gap's slices.

Usage: python benchmarks/aorta_following.py [--protocols cta chest_contrast] [--seeds 800000 ...] [--cut-mm 100]
       [--gap-mm 20] [--catalog CATALOG.json] [--json F]
Not a test: it describes the follower on synthetic scans.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def segmented_case(protocol: str, seed: int, catalog, spacing):
    """One generated whole-chest scan through the IMA/aorta pipeline: (the scan (Image), the label set, the aorta's
    value, the generator's aorta (bool (K, J, I)), the pipeline's labels without the perivascular regions (which
    are computed from the vessels, after any step a benchmark re-runs))."""
    from CardiacAI.segmentation import segment
    from CardiacAI.synthetic import GeneratorConfig, generate_case

    case = generate_case(seed, GeneratorConfig(protocol=protocol, spacing_mm=spacing, fov="chest"))
    result = segment(case.image, "ima-aorta", catalog=catalog, prefer_gpu=False)
    label_set = result.label_set
    value = label_set.by_key("aorta").value
    labels = result.labelmap.array.copy()
    for structure in label_set.structures:
        if structure.derived_from:
            labels[labels == structure.value] = 0
    return case.image, label_set, value, case.task_labels("ima-aorta").array == value, labels


def score_case(protocol: str, seed: int, cut_mm: float, catalog, spacing, gap_mm: float | None = None) -> dict:
    """Run the pipeline on one generated scan, cut its aorta (below ``cut_mm``, or in the ``gap_mm`` below it),
    follow it and score (see the module docstring)."""
    from CardiacAI.coordinates import array_axis_along
    from CardiacAI.lumen_tracking import follow_descending_aorta
    from CardiacAI.metrics import dice_coefficient as dice

    image, label_set, aorta_value, truth, labels = segmented_case(protocol, seed, catalog, spacing)
    axis, superior_up = array_axis_along(image.direction, 2)
    slice_mm = float(np.asarray(image.spacing)[::-1][axis])
    cut = int(round(cut_mm / slice_mm))
    end = 0 if gap_mm is None else max(cut - int(round(gap_mm / slice_mm)), 0)
    below = [slice(None)] * 3
    below[axis] = slice(end, cut) if superior_up else slice(labels.shape[axis] - cut, labels.shape[axis] - end)
    below = tuple(below)
    network = labels == aorta_value
    cut_labels = labels.copy()
    cut_labels[below][cut_labels[below] == aorta_value] = 0
    followed, report = follow_descending_aorta(cut_labels, label_set, image.array, image.spacing, image.direction)
    followed_aorta = followed == aorta_value
    other_axes = tuple(a for a in (0, 1, 2) if a != axis)
    truth_slices = int(np.count_nonzero(truth[below].any(axis=other_axes)))
    reached = int(np.count_nonzero((followed_aorta[below] & truth[below]).any(axis=other_axes)))
    drawn = followed_aorta[below].any(axis=other_axes)  # the slices the follower drew on
    on_drawn = (np.compress(drawn, followed_aorta[below], axis=axis), np.compress(drawn, truth[below], axis=axis))
    return {"protocol": protocol, "seed": seed, "cut_mm": cut_mm, "gap_mm": gap_mm,
            "dice_followed": round(dice(followed_aorta[below], truth[below]), 3),
            "dice_followed_where_drawn": round(dice(*on_drawn), 3) if drawn.any() else None,
            "dice_network": round(dice(network[below], truth[below]), 3),
            "truth_slices_below_cut": truth_slices, "slices_reached": reached,
            "report": report.as_dict(slice_mm)}


def catalog_without_aorta_following(path: Path, parts=None):
    """The catalog at ``path`` with these parts of every model's ``lumen_tracking`` removed (default: both aorta
    followers: the network's own aorta and, where set, IMA lumen tracking)."""
    from CardiacAI.lumen_tracking import AORTA_FOLLOWERS
    from CardiacAI.models.catalog import ModelCatalog

    data = json.loads(path.read_text())
    for item in data["models"]:
        tracking = item.get("lumen_tracking") or {}
        for part in parts or AORTA_FOLLOWERS:
            tracking.pop(part, None)
        if not tracking:
            item.pop("lumen_tracking", None)
    return ModelCatalog.from_dict(data, catalog_dir=path.resolve().parent, source=str(path))


def main(argv=None) -> int:
    from CardiacAI.models.catalog import DEFAULT_CATALOG_PATH

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocols", nargs="+", default=["cta", "chest_contrast"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[800000, 800001, 800002, 800003],
                    help="generator seeds (default: the tuning scans)")
    ap.add_argument("--cut-mm", type=float, default=100.0, help="the aorta is removed below this height (mm) "
                    "above the scan's lower edge (default 100: LIDC-IDRI-0001's network stops 105 mm above it)")
    ap.add_argument("--gap-mm", type=float, help="remove the aorta only on this length (mm) below the cut, "
                    "a gap in the network's aorta to bridge (LIDC-IDRI-0002's: 16 mm, 70-86 mm above the lower edge)")
    ap.add_argument("--spacing", default="0.703125,0.703125,2.5", help="voxel size i,j,k in mm (LIDC-IDRI-0001's)")
    ap.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG_PATH, help="catalog file (default: the packaged one)")
    ap.add_argument("--json", type=Path, help="write the rows as JSON too")
    args = ap.parse_args(argv)
    # the network's own labels: the pipeline's following of the descending aorta is switched off here
    catalog = catalog_without_aorta_following(args.catalog)
    spacing = tuple(float(v) for v in args.spacing.split(","))
    rows = []
    for protocol in args.protocols:
        for seed in args.seeds:
            row = score_case(protocol, seed, args.cut_mm, catalog, spacing, args.gap_mm)
            rows.append(row)
            print(f"{protocol:15s} {seed}: Dice below the cut followed {row['dice_followed']:.3f} "
                  f"({row['dice_followed_where_drawn']} on the slices it drew), network "
                  f"{row['dice_network']:.3f}; slices reached {row['slices_reached']}/{row['truth_slices_below_cut']}; "
                  f"{row['report']['reason']} (offset {row['report']['edge_offset_mm']} mm)", flush=True)
    for protocol in args.protocols:
        mine = [r for r in rows if r["protocol"] == protocol]
        print(f"{protocol}: median Dice below the cut: followed {np.median([r['dice_followed'] for r in mine]):.3f}, "
              f"network {np.median([r['dice_network'] for r in mine]):.3f} ({len(mine)} scans)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
