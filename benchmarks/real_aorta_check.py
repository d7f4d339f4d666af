"""How much of the real descending aorta of LIDC-IDRI-0001 an IMA/aorta model labels: a real-scan check for model selection.

No real scan here has aorta labels, and four IMA/aorta candidates in a row scored better on the synthetic tuning
scans yet labelled less of the real contrast CT's aorta (the lower descending aorta, where it passes the
diaphragm, was missing). This script makes that failure a number.

The reference is the contrast-filled lumen of the descending aorta of LIDC-IDRI-0001 (median about 390 HU),
tracked slice by slice from one seed on a mid-thoracic slice (:data:`SEED`, read off the scan): on each next
slice, the part above :data:`LUMEN_HU` within :data:`SEARCH_MM` of the last centre, opened by a 1.5 mm disk so
that it does not run into a touching vertebra (by a 4 mm one when that leaves it not round: a branch such as the
coeliac trunk), whose 2D piece nearest the last centre is the lumen when it is round enough and of an aortic size
(:func:`track_lumen`). On LIDC-IDRI-0001 it runs from the scan's lowest slice, in the upper abdomen, to just
below the arch (slices 0-95, 240 mm). Going up, the tracking stops where the cross-section
stops being a round disk (the arch); going down, where the lumen leaves the scan or splits. The pictures it
writes (``--pictures``) are how the reference was reviewed.

For a model (the catalog's default, or ``--model`` / ``--catalog``) it runs the whole one-click pipeline
(:func:`CardiacAI.segmentation.segment`) and reports on the reference's slices:

* slice recall: the fraction of reference slices on which the model's aorta covers at least half the lumen;
* the lowest and highest such slice, against the reference's (mm along the patient's axis);
* Dice of the model's aorta and the lumen within 10 mm of the lumen (the ascending aorta, on the same slices,
  is outside that tube and not counted; the aortic wall, 2-3 mm, is in the model's label but not the lumen's,
  so even a perfect model scores below 1);
* false aorta below the heart: the model's aorta outside the tube on the slices below :data:`ROOT_LOWEST_K`
  (the lowest slice of the aortic root, read off the scan), where no other aorta lies.

Usage: python benchmarks/real_aorta_check.py [--model ID] [--catalog CATALOG.json] [--pictures DIR] [--json F]
Not a test: it describes one real scan.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REAL = Path(os.environ.get("CARDIACAI_SHARED_DATA", ROOT.parent / "shared" / "data")) / "chest-ct" / "LIDC-IDRI-0001"
#: (k, j, i) of the descending aorta's centre on a mid-thoracic slice of LIDC-IDRI-0001, read off the scan.
SEED = (70, 325, 269)
#: Lowest slice (k) of LIDC-IDRI-0001 with aortic root in it, read off the scan: below it the descending aorta
#: is the only aorta.
ROOT_LOWEST_K = 60
#: HU above which the contrast-filled lumen lies (its median is ~390 HU; trabecular bone of the vertebral body
#: beside it ~150-250 HU, the cortex is thin and is opened away).
LUMEN_HU = 200.0
#: How far (mm) the lumen's centre is looked for from the last slice's.
SEARCH_MM = 30.0
#: Largest move (mm) of the centre from one slice to the next (2.5 mm slices; the aorta runs nearly along k).
MAX_STEP_MM = 8.0
#: Lumen cross-section limits (mm²): a 7-40 mm wide disk.
MIN_AREA_MM2, MAX_AREA_MM2 = 40.0, 1250.0
#: Smallest ratio of the area to that of the disk spanning the piece's widest extent: below it the slice cuts
#: the arch obliquely or the piece has run into something else.
MIN_ROUNDNESS = 0.55
#: In-plane reach (mm) of the tube around the lumen in which Dice is measured.
TUBE_MM = 10.0


def _disk(radius_px: float) -> np.ndarray:
    r = int(math.ceil(radius_px))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= radius_px * radius_px


def lumen_piece(hu_slice: np.ndarray, centre_ji, spacing_ji, *, lumen_hu: float = LUMEN_HU,
                search_mm: float = SEARCH_MM, max_step_mm: float = MAX_STEP_MM):
    """The lumen's 2D piece on one axial slice near ``centre_ji``, or None.

    ``hu_slice``: (J, I) HU; ``centre_ji``: (j, i) voxel of the last slice's centre; ``spacing_ji``: mm.
    Returns a bool (J, I) mask, or None when no piece of an aortic size and roundness lies within
    ``max_step_mm`` of the centre.
    """
    from scipy import ndimage as ndi

    sj, si = (float(s) for s in spacing_ji)
    j0, i0 = (int(round(c)) for c in centre_ji)
    hj, hi = int(math.ceil(search_mm / sj)), int(math.ceil(search_mm / si))
    box = (slice(max(j0 - hj, 0), j0 + hj + 1), slice(max(i0 - hi, 0), i0 + hi + 1))
    bright = hu_slice[box] > lumen_hu
    # a small opening parts the lumen from a touching vertebral cortex; a larger one, tried when the piece
    # is not round, cuts off a branch leaving it (the coeliac trunk) or a touching enhanced structure
    for opening_mm in (1.5, 4.0):
        piece = _nearest_piece(ndi.binary_opening(bright, structure=_disk(opening_mm / min(sj, si))),
                               (centre_ji[0] - box[0].start, centre_ji[1] - box[1].start), (sj, si), max_step_mm)
        if piece is not None:
            out = np.zeros(hu_slice.shape, bool)
            out[box] = piece
            return out
    return None


def _nearest_piece(bright: np.ndarray, centre_ji, spacing_ji, max_step_mm: float) -> np.ndarray | None:
    """The 2D piece of ``bright`` nearest ``centre_ji`` when it is a lumen-like disk (size, roundness, not cut by
    the search box's edge, centre within ``max_step_mm``); else None."""
    from scipy import ndimage as ndi

    sj, si = spacing_ji
    pieces, count = ndi.label(bright)
    if count == 0:
        return None
    jj, ii = np.nonzero(pieces)
    nearest = int(np.argmin(np.hypot((jj - centre_ji[0]) * sj, (ii - centre_ji[1]) * si)))
    piece = pieces == pieces[jj[nearest], ii[nearest]]
    pj, pi = np.nonzero(piece)
    if pj.min() == 0 or pi.min() == 0 or pj.max() == piece.shape[0] - 1 or pi.max() == piece.shape[1] - 1:
        return None  # it runs on beyond the search box: not a lumen disk
    if np.hypot((pj.mean() - centre_ji[0]) * sj, (pi.mean() - centre_ji[1]) * si) > max_step_mm:
        return None
    area = pj.size * sj * si
    if not MIN_AREA_MM2 <= area <= MAX_AREA_MM2:
        return None
    half = min(sj, si) / 2
    widest = np.hypot((pj - pj.mean()) * sj, (pi - pi.mean()) * si).max() + half
    if area / (math.pi * widest * widest) < MIN_ROUNDNESS:
        return None
    return piece


def track_lumen(hu: np.ndarray, seed_kji, spacing_ijk, **kwargs) -> np.ndarray:
    """The lumen tracked slice by slice up and down from ``seed_kji`` (see :func:`lumen_piece`).

    ``hu``: (K, J, I) HU of an axial scan; ``spacing_ijk``: mm. Returns a bool (K, J, I) mask, one
    connected run of slices containing the seed's. Raises ValueError when there is no lumen at the seed.
    """
    spacing_ji = (float(spacing_ijk[1]), float(spacing_ijk[0]))
    out = np.zeros(hu.shape, bool)
    k0, j0, i0 = seed_kji
    first = lumen_piece(hu[k0], (j0, i0), spacing_ji, **kwargs)
    if first is None:
        raise ValueError(f"no lumen at the seed {seed_kji}: check the seed against the scan")
    out[k0] = first
    for step in (-1, 1):
        piece, k = first, k0 + step
        while 0 <= k < hu.shape[0]:
            pj, pi = np.nonzero(piece)
            piece = lumen_piece(hu[k], (pj.mean(), pi.mean()), spacing_ji, **kwargs)
            if piece is None:
                break
            out[k] = piece
            k += step
    return out


def tube_around(lumen: np.ndarray, spacing_ijk, reach_mm: float = TUBE_MM) -> np.ndarray:
    """The lumen grown in-plane by ``reach_mm`` on each of its slices (bool (K, J, I))."""
    from scipy import ndimage as ndi

    edt = ndi.distance_transform_edt(~lumen, sampling=(1e6, float(spacing_ijk[1]), float(spacing_ijk[0])))
    return (edt <= reach_mm) & lumen.any(axis=(1, 2))[:, None, None]


def compare(aorta: np.ndarray, lumen: np.ndarray, spacing_ijk, root_lowest_k: int = ROOT_LOWEST_K) -> dict:
    """Scores of a model's aorta mask against the tracked lumen (both bool (K, J, I) on the scan's grid;
    ``spacing_ijk`` in mm; slices below ``root_lowest_k`` hold no aorta but the descending one).

    Returns a dict: reference_slices and covered_slices ([first, last] k; covered: at least half the lumen
    labelled, None when none is), reference_length_mm, slice_recall (0-1), missed_below_mm (from the lumen's
    lowest slice to the lowest covered one), dice_in_tube (within :data:`TUBE_MM` of the lumen on its slices),
    false_aorta_below_root_ml and aorta_ml (mL)."""
    tube = tube_around(lumen, spacing_ijk)
    slices = np.flatnonzero(lumen.any(axis=(1, 2)))
    covered = [k for k in slices if (aorta[k] & lumen[k]).sum() >= 0.5 * lumen[k].sum()]
    dk = float(spacing_ijk[2])
    inside = aorta & tube
    voxel_ml = float(np.prod(spacing_ijk)) / 1000.0
    below = aorta.copy()
    below[root_lowest_k:] = False
    below &= ~tube
    return {
        "reference_slices": [int(slices.min()), int(slices.max())],
        "reference_length_mm": round(len(slices) * dk, 1),
        "slice_recall": round(len(covered) / len(slices), 3),
        "covered_slices": [int(min(covered)), int(max(covered))] if covered else None,
        "missed_below_mm": round(((min(covered) if covered else slices.max() + 1) - slices.min()) * dk, 1),
        "dice_in_tube": round(2 * float((inside & lumen).sum()) / max(1, int(inside.sum() + lumen.sum())), 3),
        "false_aorta_below_root_ml": round(float(below.sum()) * voxel_ml, 1),
        "aorta_ml": round(float(aorta.sum()) * voxel_ml, 1),
    }


def pictures(hu: np.ndarray, lumen: np.ndarray, aorta: np.ndarray | None, spacing_ijk, path: Path,
             title: str) -> None:
    """Review picture (PNG at ``path``): a sagittal and a coronal plane through the lumen's mean centre and six
    axial crops along it; lumen green, the model's aorta (None: not drawn) red. Arrays (K, J, I), spacing mm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = np.flatnonzero(lumen.any(axis=(1, 2)))
    centres = {k: np.argwhere(lumen[k]).mean(axis=0) for k in slices}
    ks = np.linspace(slices.min(), slices.max(), 6).round().astype(int)
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.5))
    # a sagittal plane through the mean i of the lumen, and a coronal one through its mean j
    i_mid = int(round(np.mean([c[1] for c in centres.values()])))
    j_mid = int(round(np.mean([c[0] for c in centres.values()])))
    for ax, plane, name in ((axes[0, 0], np.s_[:, :, i_mid], f"sagittal i={i_mid}"),
                            (axes[0, 1], np.s_[:, j_mid, :], f"coronal j={j_mid}")):
        ax.imshow(hu[plane], cmap="gray", vmin=-200, vmax=500, origin="lower",
                  aspect=float(spacing_ijk[2]) / float(spacing_ijk[1 if name.startswith("sagittal") else 0]))
        ax.contour(lumen[plane], [0.5], colors="lime", linewidths=0.8)
        if aorta is not None:
            ax.contour(aorta[plane], [0.5], colors="red", linewidths=0.8)
        ax.set_title(name)
        ax.axis("off")
    for ax, k in zip(list(axes[0, 2:]) + list(axes[1]), ks):
        cj, ci = centres[k]
        sl = np.s_[k, max(int(cj) - 60, 0):int(cj) + 60, max(int(ci) - 60, 0):int(ci) + 60]
        ax.imshow(hu[sl], cmap="gray", vmin=-200, vmax=500)
        ax.contour(lumen[sl], [0.5], colors="lime", linewidths=0.8)
        if aorta is not None:
            ax.contour(aorta[sl], [0.5], colors="red", linewidths=0.8)
        ax.set_title(f"k={k}")
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main(argv=None) -> int:
    from model_choice import add_model_arguments, chosen_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(ap)
    ap.add_argument("--reference-only", action="store_true", help="track the lumen and draw it; run no model")
    ap.add_argument("--pictures", type=Path, help="folder for the review pictures")
    ap.add_argument("--json", type=Path, help="write the scores here")
    args = ap.parse_args(argv)
    if not REAL.is_dir():
        print(f"LIDC-IDRI-0001 not found at {REAL}")
        return 1
    from CardiacAI.io import read_image

    image = read_image(REAL)
    hu = image.array
    lumen = track_lumen(hu, SEED, image.spacing)
    slices = np.flatnonzero(lumen.any(axis=(1, 2)))
    print(f"reference: descending aorta lumen on slices {slices.min()}-{slices.max()} "
          f"({len(slices) * image.spacing[2]:.0f} mm), {lumen.sum() * np.prod(image.spacing) / 1000:.1f} mL")
    aorta = None
    scores: dict = {}
    if not args.reference_only:
        from CardiacAI.segmentation import segment

        catalog, entry = chosen_model(args)
        result = segment(image, "ima-aorta", model_id=entry.id, version=entry.version, catalog=catalog,
                         prefer_gpu=False)
        aorta = result.labelmap.array == result.label_set.by_key("aorta").value
        scores = {"model": entry.id, "version": entry.version, "scan": "LIDC-IDRI-0001 (contrast chest CT)",
                  "reference": "descending aorta lumen tracked from the seed (benchmarks/real_aorta_check.py)",
                  **compare(aorta, lumen, image.spacing)}
        print(json.dumps(scores))
    if args.pictures:
        name = "reference" if aorta is None else f"{scores['model']}-{scores['version']}"
        pictures(hu, lumen, aorta, image.spacing, args.pictures / f"real-aorta-{name}.png",
                 f"LIDC-IDRI-0001 descending aorta: {name}")
    if args.json and scores:
        args.json.write_text(json.dumps(scores, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
