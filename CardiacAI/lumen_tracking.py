"""Follow an enhanced thin artery's lumen slice by slice from the pieces a network found.

On a contrast-enhanced CT an internal mammary artery (IMA) is a 1.5-3 mm bright dot (250-400 HU) in the
fat and muscle behind the costal cartilages, on every axial slice from the subclavian artery to the
diaphragm. The network finds only stretches of it on the real scans (on LIDC-IDRI-0001 25 of the left
IMA's 58 slices) and draws them thinner than the lumen. This module takes each found piece as a seed
and

* widens the piece on each of its slices to the lumen at half maximum (the voxels at or above halfway
  between the artery's peak HU and the surrounding tissue's, connected to the peak: the
  full-width-at-half-maximum edge used to measure vessel lumens on CT; the network's own voxels stay), and
* extends the piece up and down the body: on each next slice, the brightest small closed blob within
  ``step_mm`` of the last centre, for as long as one is bright enough.

A blob is accepted only when it is closed (its half-maximum region ends inside a ``blob_radius_mm``
disc, so the track cannot run into the costal cartilages, a rib or the heart) and no larger than
``max_area_mm2``, and when it touches no other labelled structure. A piece whose own median peak is
below ``min_peak_hu`` (an unenhanced scan: blood 30-60 HU) is left as the network drew it.

This is classical seeded vessel tracking after a network's detection, not a learnt model: it can only
follow what is bright on the scan and connected to a detected piece. Measured in docs/segmentation.md
("Following the IMA lumen").
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError

#: Structures whose pieces are followed (the IMA/aorta label set's arteries).
TRACKED_ARTERIES = ("left_internal_mammary_artery", "right_internal_mammary_artery")


@dataclasses.dataclass(frozen=True)
class TrackingSettings:
    """How a thin enhanced artery is followed (lengths in mm, areas in mm², intensities in HU).

    ``min_peak_hu``: a piece is followed only when the median of its per-slice peaks reaches this (enhanced
    blood; the real IMAs of LIDC-IDRI-0001 peak at 280-390 HU, unenhanced blood at 30-60 HU).
    ``fade``: on a new slice the brightest candidate must reach the surrounding tissue's HU plus this fraction
    of the piece's peak contrast (and ``min_peak_hu``); the track stops where the artery fades or ends.
    ``step_mm``: how far (in-plane) the centre may move from one slice to the next.
    ``blob_radius_mm``: the half-maximum region must end inside a disc of this radius around its peak.
    ``max_area_mm2``: largest cross-section accepted (16 mm²: a 4.5 mm circle; the IMAs are 1.5-3 mm).
    ``background_ring_mm``: the surrounding tissue's HU is the median 4-7 mm from the piece (capped at
    ``max_background_hu``: where the ring reaches bone or the heart, fat and muscle are what surrounds the lumen).
    ``local_ring_mm``, ``lung_below_hu``: a blob's level is halfway between its peak and the median of the
    voxels this far (inner, outer) from the peak on its slice that are not lung.
    ``max_candidates``: how many of the brightest voxels near the last centre are tried as the next centre.
    ``max_extension_mm``: the farthest a piece is extended at each end.
    ``redraw``: widen the found slices' cross-sections to the lumen at half maximum as well (the network's own
    voxels stay).
    """

    min_peak_hu: float = 150.0
    fade: float = 0.5
    step_mm: float = 2.0
    blob_radius_mm: float = 4.0
    max_area_mm2: float = 16.0
    background_ring_mm: tuple[float, float] = (4.0, 7.0)
    max_background_hu: float = 50.0
    max_extension_mm: float = 200.0
    max_candidates: int = 6
    local_ring_mm: tuple[float, float] = (2.5, 4.0)
    lung_below_hu: float = -400.0
    redraw: bool = True


@dataclasses.dataclass
class TrackReport:
    """What tracking did to one structure: its slices before and after (along the long axis), the number of
    pieces followed and left alone (unenhanced), and each followed piece's median peak (HU)."""

    slices_before: int = 0
    slices_after: int = 0
    pieces_followed: int = 0
    pieces_unenhanced: int = 0
    peaks_hu: list[float] = dataclasses.field(default_factory=list)

    def as_dict(self, slice_mm: float) -> dict:
        """The report for the run record; ``slice_mm`` is the slice spacing along the long axis (mm)."""
        return {"slices_before": self.slices_before, "slices_after": self.slices_after,
                "length_added_mm": round((self.slices_after - self.slices_before) * slice_mm, 1),
                "pieces_followed": self.pieces_followed, "pieces_unenhanced": self.pieces_unenhanced,
                "median_peak_hu": [round(p, 1) for p in self.peaks_hu]}


def follow_thin_arteries(labelmap: np.ndarray, label_set, ct_hu: np.ndarray, spacing_ijk, *, long_axis: int = 0,
                         keys: Iterable[str] = TRACKED_ARTERIES,
                         settings: TrackingSettings = TrackingSettings()) -> tuple[np.ndarray, dict[str, TrackReport]]:
    """Widen and extend the enhanced pieces of thin arteries along their lumen (module docstring).

    Parameters
    ----------
    labelmap: integer label map (K, J, I) with ``label_set``'s values.
    label_set: a :class:`CardiacAI.labels.LabelSet`; keys not in it are skipped.
    ct_hu: the CT in HU on the same (K, J, I) grid.
    spacing_ijk: voxel size (i, j, k) in mm.
    long_axis: the array axis (0 = k, 1 = j, 2 = i) closest to the patient's superior-inferior axis; the
        artery is followed slice by slice along it.
    keys: the structures to follow.
    settings: :class:`TrackingSettings`.

    Returns
    -------
    (a new label map, structure key -> :class:`TrackReport`). A voxel already labelled as another structure
    is never taken, and no voxel of the followed structure is removed. Raises InputError for arrays of different shapes, a non-integer label map, a spacing that
    is not three positive numbers or a ``long_axis`` not in 0-2.
    """
    labels = np.asarray(labelmap)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"label map must be integer, got {labels.dtype}", "pass label values, not probabilities")
    if ct_hu.shape != labels.shape:
        raise InputError(f"label map {labels.shape} and CT {ct_hu.shape} differ in shape",
                         "pass the CT the label map was predicted from")
    if long_axis not in (0, 1, 2):
        raise InputError(f"long_axis must be 0, 1 or 2 (k, j, i), got {long_axis!r}", "pass an array axis")
    spacing = np.asarray(spacing_ijk, dtype=float).reshape(-1)
    if spacing.size != 3 or not np.all(spacing > 0):
        raise InputError(f"spacing must be three positive numbers (mm), got {spacing_ijk!r}", "pass (i, j, k) in mm")
    spacing_kji = spacing[::-1]
    out = labels.copy()
    # Slices along the long axis: views with that axis first, spacing to match.
    order = [long_axis] + [a for a in (0, 1, 2) if a != long_axis]
    out_v = np.moveaxis(out, order, (0, 1, 2))
    hu_v = np.moveaxis(ct_hu, order, (0, 1, 2))
    sp = tuple(float(spacing_kji[a]) for a in order)
    reports: dict[str, TrackReport] = {}
    wanted = set(keys)
    for structure in label_set.structures:
        if structure.key not in wanted:
            continue
        report = TrackReport()
        reports[structure.key] = report
        value = structure.value
        mask = out_v == value
        ks = np.flatnonzero(mask.any(axis=(1, 2)))
        report.slices_before = report.slices_after = int(ks.size)
        if not ks.size:
            continue
        # Everything is done in the box of the structure's pieces and on single slices: the scan is 10^7-10^8
        # voxels, an IMA a few hundred.
        js, is_ = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
        crop = (slice(ks[0], ks[-1] + 1), slice(js[0], js[-1] + 1), slice(is_[0], is_[-1] + 1))
        pieces, _ = ndi.label(mask[crop], np.ones((3, 3, 3), bool))
        slices: dict[int, np.ndarray] = {}  # slice k -> this structure's new cross-sections on it (J, I)
        for index, box in enumerate(ndi.find_objects(pieces), start=1):
            box = tuple(slice(b.start + c.start, b.stop + c.start) for b, c in zip(box, crop))
            piece = pieces[tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(box, crop))] == index
            followed = _follow_piece(hu_v, piece, box, out_v, value, mask, sp, settings, report)
            for k, section in followed.items():
                slices.setdefault(k, mask[k].copy())[:] |= section  # the network's voxels stay
        after = set(ks.tolist())
        for k, section in slices.items():
            # a voxel of another structure is never taken (the track refuses them; a widened slice may reach one)
            section &= (out_v[k] == 0) | (out_v[k] == value)
            out_v[k][section] = value
            if section.any():
                after.add(k)
        report.slices_after = len(after)
    return out, reports


def _follow_piece(hu, piece, box, labels, value, same, sp, settings: TrackingSettings,
                  report: TrackReport) -> dict[int, np.ndarray]:
    """Slice k -> the piece's cross-section (J, I) on it, widened and extended: see :func:`follow_thin_arteries`.
    ``piece``: the piece's voxels in ``box`` (bool); ``labels``: the label map (K, J, I); ``value``: this
    structure's label; ``same``: all of this structure's voxels before tracking (bool (K, J, I))."""
    K, J, I = hu.shape

    def whole_slice(k):
        section = np.zeros((J, I), bool)
        section[box[1:]] = piece[k - box[0].start]
        return section

    peaks: dict[int, tuple[int, int, float]] = {}
    for k in range(box[0].start, box[0].stop):
        jj, ii = np.nonzero(piece[k - box[0].start])
        if jj.size:
            values = hu[k, jj + box[1].start, ii + box[2].start]
            n = int(np.argmax(values))
            peaks[k] = (int(jj[n]) + box[1].start, int(ii[n]) + box[2].start, float(values[n]))
    reference = float(np.median([p[2] for p in peaks.values()]))
    if reference < settings.min_peak_hu:
        report.pieces_unenhanced += 1
        return {}
    report.pieces_followed += 1
    report.peaks_hu.append(reference)
    background = min(_surrounding_hu(hu, piece, box, sp, settings.background_ring_mm), settings.max_background_hu)
    out: dict[int, np.ndarray] = {}
    for k, (j, i, _) in peaks.items():
        blob = _closed_blob(hu[k], j, i, background, sp[1:], settings) if settings.redraw else None
        out[k] = blob if blob is not None else whole_slice(k)
    accept = max(settings.min_peak_hu, background + settings.fade * (reference - background))
    offsets = _disc_offsets(settings.step_mm, sp[1:])
    max_steps = int(settings.max_extension_mm // sp[0])
    for direction, k0 in ((1, max(peaks)), (-1, min(peaks))):
        j, i = peaks[k0][:2]
        k = k0 + direction
        for _ in range(max_steps):
            if not 0 <= k < K:
                break
            pj, pi = offsets[0] + j, offsets[1] + i
            inside = (pj >= 0) & (pj < J) & (pi >= 0) & (pi < I)
            pj, pi = pj[inside], pi[inside]
            values = hu[k, pj, pi]
            others = (labels[k] != 0) & (labels[k] != value)
            chosen = None
            for n in np.argsort(values)[::-1][:settings.max_candidates]:
                if values[n] < accept:
                    break
                blob = _closed_blob(hu[k], int(pj[n]), int(pi[n]), background, sp[1:], settings)
                if blob is not None and not (blob & others).any():
                    chosen = (int(pj[n]), int(pi[n]), blob)
                    break
            if chosen is None:
                break
            j, i, blob = chosen
            elsewhere = same[k] & ~whole_slice(k) if box[0].start <= k < box[0].stop else same[k]
            if elsewhere.any():
                # The artery is one vessel: where another of its pieces holds this slice, the track either
                # meets it (the gap between them is bridged; that piece's far end is followed from it) or runs
                # beside it, on another vessel, and stops.
                if (blob & elsewhere).any():
                    out[k] = out.get(k, np.zeros((J, I), bool)) | blob
                break
            out[k] = out.get(k, np.zeros((J, I), bool)) | blob
            k += direction
    return out


def _surrounding_hu(hu, piece, box, sp, ring_mm) -> float:
    """Median HU of the voxels ``ring_mm`` (inner, outer) from the piece (its voxels in ``box``), on its own slices."""
    margin = [0] + [int(np.ceil(ring_mm[1] / s)) + 1 for s in sp[1:]]
    crop = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, hu.shape))
    inside = np.zeros([c.stop - c.start for c in crop], bool)
    inside[tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(box, crop))] = piece
    distance = ndi.distance_transform_edt(~inside, sampling=sp)
    ring = (distance > ring_mm[0]) & (distance <= ring_mm[1])
    return float(np.median(hu[crop][ring])) if ring.any() else -100.0


def _disc_offsets(radius_mm: float, sp_ji) -> tuple[np.ndarray, np.ndarray]:
    rj, ri = int(radius_mm // sp_ji[0]), int(radius_mm // sp_ji[1])
    jj, ii = np.mgrid[-rj:rj + 1, -ri:ri + 1]
    inside = (jj * sp_ji[0]) ** 2 + (ii * sp_ji[1]) ** 2 <= radius_mm ** 2
    return jj[inside], ii[inside]


@functools.lru_cache(maxsize=8)
def _blob_geometry(sp_ji: tuple[float, float], radius_mm: float):
    """(half-sizes rj, ri in voxels, distance in mm from the centre, the disc, its rim) of the window a blob is
    judged in: the same for every blob of a scan, so computed once."""
    rj, ri = int(radius_mm // sp_ji[0]), int(radius_mm // sp_ji[1])
    jj, ii = np.mgrid[-rj:rj + 1, -ri:ri + 1]
    r = np.sqrt((jj * sp_ji[0]) ** 2 + (ii * sp_ji[1]) ** 2)
    disc = r <= radius_mm
    rim = disc & ~ndi.binary_erosion(disc)
    for array in (r, disc, rim):
        array.flags.writeable = False  # shared between calls
    return rj, ri, r, disc, rim


def _closed_blob(hu_slice, j: int, i: int, background: float, sp_ji, settings: TrackingSettings) -> np.ndarray | None:
    """The lumen around (j, i) on one slice at half maximum (bool, the slice's shape), or None.

    The level is halfway between the HU at (j, i) and the tissue around it: the median of the voxels
    ``local_ring_mm`` from (j, i) that are not lung (above ``lung_below_hu``), or ``background`` where there
    are none (an artery against muscle or cartilage has a brighter surrounding than one in fat, and lung
    beside it says nothing about the lumen's edge). The region is the voxels at or above the level
    4-connected to (j, i); None when it reaches the rim of the ``blob_radius_mm`` disc (it is part of
    something larger) or is larger than ``max_area_mm2``."""
    rj, ri, r, disc, rim = _blob_geometry(tuple(sp_ji), settings.blob_radius_mm)
    J, I = hu_slice.shape
    if j - rj < 0 or i - ri < 0 or j + rj >= J or i + ri >= I:
        return None
    window = hu_slice[j - rj:j + rj + 1, i - ri:i + ri + 1]
    ring = (r > settings.local_ring_mm[0]) & (r <= settings.local_ring_mm[1]) & (window > settings.lung_below_hu)
    local = float(np.median(window[ring])) if ring.any() else background
    level = 0.5 * (float(hu_slice[j, i]) + local)
    above = (window >= level) & disc
    if not above[rj, ri]:
        return None
    regions, _ = ndi.label(above)
    region = regions == regions[rj, ri]
    if (region & rim).any() or region.sum() * sp_ji[0] * sp_ji[1] > settings.max_area_mm2:
        return None
    out = np.zeros(hu_slice.shape, bool)
    out[j - rj:j + rj + 1, i - ri:i + ri + 1] = region
    return out
