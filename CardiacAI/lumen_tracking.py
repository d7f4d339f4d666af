"""Follow an artery slice by slice from what a network found: the thin enhanced IMAs along their lumen from their pieces
(:func:`follow_thin_arteries`), the descending aorta below its lower end, enhanced or not
(:func:`follow_descending_aorta`), an unenhanced ascending aorta at its width
(:func:`follow_unenhanced_ascending_aorta`), and an enhanced aorta drawn as a core inside its lumen widened to the
lumen (:func:`draw_enhanced_aorta_lumen`).

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
("Following the IMA lumen", "Following the descending aorta", "Following the unenhanced ascending aorta").
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, NamedTuple

import numpy as np
from scipy import ndimage as ndi

from .coordinates import array_axis_along
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
    labels, spacing = checked_label_inputs(labelmap, ct_hu, spacing_ijk)
    if long_axis not in (0, 1, 2):
        raise InputError(f"long_axis must be 0, 1 or 2 (k, j, i), got {long_axis!r}", "pass an array axis")
    out = labels.copy()
    order, out_v, hu_v, sp = _slice_views(out, ct_hu, spacing, long_axis)
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


def checked_label_inputs(labelmap, ct_hu: np.ndarray, spacing_ijk) -> tuple[np.ndarray, np.ndarray]:
    """(the label map as an integer array (K, J, I), the spacing (i, j, k) in mm as floats) after the checks every
    step that redraws a vessel from the CT makes (here and in :mod:`CardiacAI.lumen_trim`); ``ct_hu`` is the CT in HU
    on the same (K, J, I) grid. Raises InputError for a non-integer label map, a CT of another shape, or a spacing
    that is not three positive numbers."""
    labels = np.asarray(labelmap)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"label map must be integer, got {labels.dtype}", "pass label values, not probabilities")
    if ct_hu.shape != labels.shape:
        raise InputError(f"label map {labels.shape} and CT {ct_hu.shape} differ in shape",
                         "pass the CT the label map was predicted from")
    spacing = np.asarray(spacing_ijk, dtype=float).reshape(-1)
    if spacing.size != 3 or not np.all(spacing > 0):
        raise InputError(f"spacing must be three positive numbers (mm), got {spacing_ijk!r}", "pass (i, j, k) in mm")
    return labels, spacing


def _slice_views(labels: np.ndarray, ct_hu: np.ndarray, spacing_ijk: np.ndarray, long_axis: int):
    """(axis order, label view, CT view, the views' voxel size (mm) per axis): views of the (K, J, I) arrays with
    ``long_axis`` first, so that ``view[k]`` is one slice across the body (writing into the label view writes
    into ``labels``)."""
    order = [long_axis] + [a for a in (0, 1, 2) if a != long_axis]
    spacing_kji = spacing_ijk[::-1]
    return (order, np.moveaxis(labels, order, (0, 1, 2)), np.moveaxis(ct_hu, order, (0, 1, 2)),
            tuple(float(spacing_kji[a]) for a in order))


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


# --- The descending aorta below the network's lower end --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AortaFollowSettings:
    """How the enhanced descending aorta is followed down (lengths in mm, areas in mm², intensities in HU).

    ``min_lumen_hu``: followed only when the median HU of the network's aorta on the reference slices reaches this
    (enhanced blood; LIDC-IDRI-0001's descending aorta 390-420 HU, unenhanced blood 30-60 HU).
    ``reference_slices``: how many of the network's lowest full cross-sections (at least ``full_fraction`` of the
    median area of its lowest ``reference_reach_mm``; the tapered end is not one) give the lumen's HU, the
    surrounding tissue's HU and the edge offset.
    ``ring_mm``, ``lung_below_hu``, ``max_background_hu``: the surrounding tissue's HU is the median of the
    voxels ``ring_mm`` (inner, outer) from the reference cross-sections that are not lung, capped (where the ring
    reaches bone or an enhanced organ, fat and muscle are what surround the aorta). The lumen is the voxels at or
    above halfway between the two (half maximum).
    ``area_change``: a slice's lumen area must lie within these fractions of the previous slice's.
    ``min_roundness``: its area over that of the disc spanning its widest extent (below: an oblique cut, a
    bifurcation, or it has run into something else).
    ``branch_opening``: the lumen is opened by a disc of this fraction of the previous slice's equivalent
    radius, so that branches (coeliac trunk, superior mesenteric and renal arteries) and a touching vertebral
    cortex come off; ``max_reach``: voxels farther from the lumen's centre than this multiple of the previous
    equivalent radius are a branch's stump and are left out.
    ``split_beyond``: a bright neighbour the lumen touches (a vertebral body, an enhanced vein or organ) is
    split off at the neck between them when the lumen's half-maximum region reaches farther than this multiple of
    the previous equivalent radius from the previous centre.
    ``max_step_mm``: the largest in-plane move of the lumen's centre from one slice to the next.
    ``ascending_within_mm``, ``ascending_ahead_mm``, ``min_section_mm2``: the descending aorta is the hindmost
    aorta cross-section on the lowest slice, within ``ascending_within_mm`` of the aorta's lower end, that holds
    another one at least ``ascending_ahead_mm`` in front of it (the ascending aorta or the root), both at least
    ``min_section_mm2`` (smaller pieces are stray voxels, not the aorta), followed down to its lowest slice;
    followed down from the root, the track would run into the left ventricle.
    ``max_edge_offset_mm``: the limit on the edge offset (the network's equivalent radius minus the half-maximum
    lumen's on the reference slices), by which each followed cross-section is grown (or shrunk), so that the
    extension draws the aorta's edge where the network draws it on this scan.

    Unenhanced scans (``follow_unenhanced``; blood and the aortic wall one soft-tissue disc of
    ``unenhanced_blood_hu`` in the fat, the lung, the oesophagus and the heart): on each slice the aorta is the
    circle that best fits the edge between soft tissue and fat or lung (a Hough transform of the edge of the
    voxels at or above halfway between the blood's HU and the median HU of the ring's fat (``fat_hu``, at least
    ``min_fat_voxels`` of them), after a Gaussian of ``edge_smoothing_mm``); where the aorta touches the heart or
    the oesophagus there is no edge and the circle spans the gap. The circle's radius lies within
    ``reference_radius_range`` of the network's equivalent radius on the reference slices (the network may draw the
    unenhanced aorta thin), then within ``radius_range`` of the reference circle's and ``radius_change`` of the
    previous slice's; its centre within ``max_disc_step_mm`` of the previous one. The track stops where less than
    ``min_edge_support`` of the circle's outline lies on an edge (where the crura or the liver close round the
    aorta below the diaphragm). Each slice takes the disc's voxels at or above the level; the network's own voxels
    stay, so a gap between two pieces of the network's aorta is bridged and its thin pieces widened.

    The unenhanced ascending aorta (:func:`follow_unenhanced_ascending_aorta`): circles of radius within
    ``ascending_radius_mm``, the edge level halfway to the fat within ``fat_search_mm`` of the network's core, each
    circle's tissue opened by a disc of ``ascending_opening_mm`` (a pericardial sheath comes off); the network's
    aorta beside it on its slices, in pieces reaching more than ``beside_rim_mm`` beyond the circle, is removed.
    Where its circles give out at the turn into the arch, the ascending aorta is joined over the arch's top to the
    network's arch up to ``arch_reach_mm`` above the last circle, when that arch lies within ``arch_gap_mm`` of it.

    The enhanced aorta drawn to its lumen (:func:`draw_enhanced_aorta_lumen`): the lumen's and surroundings' HU come
    from the network's cross-sections of at least ``min_section_mm2``; each of its cross-sections in a piece of the
    aorta of at least ``min_piece_fraction`` of the largest's volume takes the voxels at half maximum connected to it
    within ``widen_mm`` of it (never another structure's), opened by a disc of ``branch_opening`` times the result's
    equivalent radius, when that stays round (no voxel farther from its centre than ``widen_max_reach`` times its
    equivalent radius, plus half a voxel) and its equivalent radius is at most ``max_lumen_radius_mm``.
    """

    min_lumen_hu: float = 150.0
    reference_slices: int = 5
    reference_reach_mm: float = 40.0
    full_fraction: float = 0.7
    ring_mm: tuple[float, float] = (4.0, 7.0)
    lung_below_hu: float = -400.0
    max_background_hu: float = 50.0
    area_change: tuple[float, float] = (0.6, 1.4)
    min_roundness: float = 0.6
    branch_opening: float = 0.5
    max_reach: float = 1.3
    split_beyond: float = 1.5
    max_step_mm: float = 8.0
    ascending_within_mm: float = 250.0
    ascending_ahead_mm: float = 10.0
    min_section_mm2: float = 100.0
    max_edge_offset_mm: float = 3.0
    follow_unenhanced: bool = True
    unenhanced_blood_hu: tuple[float, float] = (0.0, 100.0)
    fat_hu: tuple[float, float] = (-190.0, -30.0)
    min_fat_voxels: int = 30
    edge_smoothing_mm: float = 0.7
    reference_radius_range: tuple[float, float] = (0.8, 1.6)
    radius_range: tuple[float, float] = (0.75, 1.15)
    radius_change: float = 0.1
    max_disc_step_mm: float = 4.0
    min_edge_support: float = 0.25
    ascending_radius_mm: tuple[float, float] = (11.0, 25.0)
    fat_search_mm: float = 20.0
    ascending_opening_mm: float = 3.0
    beside_rim_mm: float = 3.0
    arch_reach_mm: float = 30.0
    arch_gap_mm: float = 20.0
    widen_mm: float = 20.0
    min_piece_fraction: float = 0.25
    widen_max_reach: float = 1.3
    reference_sections: int = 12
    max_lumen_radius_mm: float = 25.0


@dataclasses.dataclass
class AortaFollowReport:
    """What following the descending aorta did: the slices on which it drew aorta where the network had none
    (below its lower end, or in a gap), the lumen's and the surrounding tissue's HU (unenhanced: the fat's), the
    half-maximum level, the edge offset (mm; None when unenhanced, the circle being the vessel's outer edge), the
    network's aorta removed beside the followed aorta (mL; only the ascending follower removes any), the aorta it
    added joining the ascending aorta to the network's arch over the arch's top (mL; the ascending follower), the aorta
    added widening the network's cross-sections to the enhanced lumen (mL; :func:`draw_enhanced_aorta_lumen`), and why
    it stopped or did not start (``reason``)."""

    followed: bool = False
    reason: str = ""
    slices_added: int = 0
    lumen_hu: float | None = None
    background_hu: float | None = None
    level_hu: float | None = None
    edge_offset_mm: float | None = None
    removed_ml: float = 0.0
    joined_over_arch_ml: float = 0.0
    widened_ml: float = 0.0

    def as_dict(self, slice_mm: float) -> dict:
        """The report for the run record; ``slice_mm`` is the slice spacing along the long axis (mm)."""
        rounded = {k: (None if v is None else round(v, 1)) for k, v in
                   (("lumen_hu", self.lumen_hu), ("background_hu", self.background_hu), ("level_hu", self.level_hu))}
        return {"followed": self.followed, "reason": self.reason, "slices_added": self.slices_added,
                "length_added_mm": round(self.slices_added * slice_mm, 1), **rounded,
                "edge_offset_mm": None if self.edge_offset_mm is None else round(self.edge_offset_mm, 2),
                "removed_ml": round(self.removed_ml, 2), "joined_over_arch_ml": round(self.joined_over_arch_ml, 2),
                "widened_ml": round(self.widened_ml, 2)}


def follow_descending_aorta(labelmap: np.ndarray, label_set, ct_hu: np.ndarray, spacing_ijk, direction, *,
                            key: str = "aorta", settings: AortaFollowSettings = AortaFollowSettings()
                            ) -> tuple[np.ndarray, AortaFollowReport]:
    """Continue the descending aorta below the network's lower end, slice by slice: an enhanced one along its
    lumen, an unenhanced one as the circle fitting its edge.

    On contrast-enhanced chest CT the network may stop the aorta at the diaphragm while the lumen runs on,
    bright and round, in front of the spine to the scan's lower edge (LIDC-IDRI-0001: the lowest 44 slices,
    110 mm). From the network's lowest full cross-sections this measures the lumen's HU and the surrounding
    tissue's, then on each slice below takes the lumen at half maximum that overlaps the previous slice's,
    with branches opened off, for as long as it stays round, of a similar area and near the previous centre.
    The lumen's edge is the half-maximum level between the lumen's and the surroundings' HU (the
    full-width-at-half-maximum edge used to measure vessel lumens on CT, as for the IMAs: module docstring). Each cross-section
    is grown by the edge offset measured on the network's own slices, so the extension meets the network's aorta
    without a step. Without contrast (blood 0-100 HU) blood and wall are one soft-tissue disc touching the
    oesophagus and the heart: each slice then takes the circle best fitting the disc's edge with the fat and the
    lung (a Hough transform), for as long as enough of its outline lies on an edge (LIDC-IDRI-0002: the network's
    16 mm gap above the diaphragm bridged, its thin aorta widened to the vessel's 22-24 mm). Both draw on the
    network's slices below the start too, so a gap there is bridged. Nothing is done when the lowest aorta is not
    the descending aorta, or for blood of 100-150 HU (see :class:`AortaFollowSettings`).

    Parameters
    ----------
    labelmap: integer label map (K, J, I) with ``label_set``'s values.
    label_set: a :class:`CardiacAI.labels.LabelSet` with ``key``.
    ct_hu: the CT in HU on the same (K, J, I) grid.
    spacing_ijk: voxel size (i, j, k) in mm.
    direction: the grid's (3, 3) LPS direction cosines (column n: index axis i, j, k), for the patient's
        superior and anterior directions.
    key: the aorta's structure key.
    settings: :class:`AortaFollowSettings`.

    Returns
    -------
    (a new label map, :class:`AortaFollowReport`). Only background voxels are taken; nothing is removed.
    Raises InputError for arrays of different shapes, a non-integer label map, a spacing that is not three
    positive numbers, or a ``key`` not in the label set (the error lists its keys).
    """
    return _run_aorta_follower(_DescendingAortaFollower, labelmap, label_set, ct_hu, spacing_ijk, direction, key,
                               settings)


def follow_unenhanced_ascending_aorta(labelmap: np.ndarray, label_set, ct_hu: np.ndarray, spacing_ijk, direction, *,
                                      key: str = "aorta", settings: AortaFollowSettings = AortaFollowSettings()
                                      ) -> tuple[np.ndarray, AortaFollowReport]:
    """Draw an unenhanced ascending aorta at its width: on each slice, the circle fitting its edge with the fat.

    Without contrast the network may find only a thin core of the ascending aorta (LIDC-IDRI-0002: 230-290 mm²
    drawn of a vessel about 35 mm across). The ascending aorta is the frontmost of the network's aorta
    cross-sections at least ``ascending_ahead_mm`` in front of the hindmost one (the descending aorta), each at
    least ``min_section_mm2``, chained through overlapping slices. On those slices a circle of radius within
    ``ascending_radius_mm`` is fitted to the edge of the soft tissue at or above halfway between the core's HU
    (unenhanced blood, ``unenhanced_blood_hu``) and the fat's near it (``fat_hu``, within ``fat_search_mm``), as
    for the unenhanced descending aorta (a Hough transform; where the aorta touches the pulmonary trunk, the
    superior vena cava or the atria there is no edge and the circle spans the gap). From the fit of the most
    typical radius the track goes up and down, each circle's radius within ``radius_range`` of the fits' median
    and ``radius_change`` of the previous one, its centre within ``max_disc_step_mm``, until less than
    ``min_edge_support`` of its outline lies on an edge (down: where the root enters the heart; up: where the
    ascending aorta turns into the arch), or it meets another labelled structure or the network's descending
    aorta. Each slice takes the disc's soft-tissue voxels; the network's own voxels in the disc stay. Below the
    arch the thoracic aorta crosses an axial slice twice, as the ascending and the descending aorta: on each slice
    the track drew, the network's aorta outside the disc is removed in the pieces (connected through those slices)
    that reach more than ``beside_rim_mm`` beyond it and neither belong to nor touch the network's aorta connected
    to the descending aorta (the arch's underside does) (LIDC-IDRI-0002: vessels at the right and the left hilum
    beside the ascending aorta, 2.1 and 1.1 mL). Where the circles give out on the way up, at the turn into the
    arch, the ascending aorta is joined over the arch's top to the network's arch through the soft tissue between
    them, up to ``arch_reach_mm`` above the last circle (LIDC-IDRI-0002: slices 181-191, 15.5 mL; the aorta one
    piece). Nothing is done on an enhanced scan (the network draws the enhanced lumen), or when the network finds
    no ascending aorta.

    Parameters and errors as :func:`follow_descending_aorta`. Returns (a new label map, :class:`AortaFollowReport`):
    ``slices_added`` counts the slices that held no aorta before, ``removed_ml`` the aorta removed beside the
    ascending aorta, ``joined_over_arch_ml`` the aorta added over the arch's top; no other structure's voxel
    changes.
    """
    return _run_aorta_follower(_AscendingAortaFollower, labelmap, label_set, ct_hu, spacing_ijk, direction, key,
                               settings)


def draw_enhanced_aorta_lumen(labelmap: np.ndarray, label_set, ct_hu: np.ndarray, spacing_ijk, direction, *,
                              key: str = "aorta", settings: AortaFollowSettings = AortaFollowSettings()
                              ) -> tuple[np.ndarray, AortaFollowReport]:
    """Widen a contrast-enhanced aorta's cross-sections to its lumen at half maximum, slice by slice.

    A network may draw an enhanced aorta as a core inside its lumen: on LIDC-IDRI-0001 the whole-heart model's
    descending aorta covers a median 71 % of its lumen per slice (11 % on its lowest). The lumen's HU is the median
    of the network's aorta one voxel inside its edge (at least ``min_lumen_hu``: enhanced blood; nothing is done on
    an unenhanced scan), the surrounding tissue's the median ``ring_mm`` around the lumen a first level finds (the
    ring around a core lies in the lumen) that is not lung (capped at ``max_background_hu``), and the
    lumen's edge the level halfway between them: the full-width-at-half-maximum edge used to measure vessel lumens
    on CT, which is also where the project's generator draws the aorta's label (the HU are taken on its
    cross-sections of at least ``min_section_mm2``). On each slice every cross-section of the network's aorta (in a
    piece of at least ``min_piece_fraction`` of the largest piece's volume: a small piece apart is left as it is)
    takes the unlabelled voxels at or above the level connected to it within ``widen_mm`` of it, opened by a disc of
    ``branch_opening`` times their equivalent radius (a branch or a bright neighbour touching across a neck comes
    off). A cross-section whose lumen does not end within ``widen_mm`` (it runs on into a touching bright chamber or
    vein, or along the arch), is not round (a voxel farther from its centre than ``widen_max_reach`` times its
    equivalent radius) or is wider than ``max_lumen_radius_mm`` is left as the network drew it. A bright neighbour
    the network's label set does not hold, touching an aorta the network drew whole, can pass these tests (a
    pulmonary artery on a synthetic scan, for the IMA/aorta task): use it where the neighbouring blood pools are
    labelled (the whole-heart task; docs/segmentation.md). The same serves another large enhanced vessel that runs
    across the axial slices and that the network draws as a core (``key``: the whole-heart model's superior vena
    cava, catalog ``lumen_tracking.enhanced_lumen_widen``).

    Parameters
    ----------
    labelmap: integer label map (K, J, I) with ``label_set``'s values.
    label_set: a :class:`CardiacAI.labels.LabelSet` with ``key``.
    ct_hu: the CT in HU on the same (K, J, I) grid.
    spacing_ijk: voxel size (i, j, k) in mm.
    direction: the grid's (3, 3) LPS direction cosines (column n: index axis i, j, k); axial slices are taken
        across the axis nearest the patient's superior direction.
    key: the aorta's structure key.
    settings: :class:`AortaFollowSettings`.

    Returns
    -------
    (a new label map, :class:`AortaFollowReport` with ``widened_ml``). Only background voxels are taken; nothing
    is removed. Raises InputError for arrays of different shapes, a non-integer label map, a spacing that is not
    three positive numbers, or a ``key`` not in the label set (the error lists its keys).
    """
    return _run_aorta_follower(_EnhancedLumenWidener, labelmap, label_set, ct_hu, spacing_ijk, direction, key,
                               settings)


#: The aorta followers by their catalog key under ``lumen_tracking``, in the order the pipeline runs them (the
#: descending one measures its edge on the network's lowest cross-sections after they have been widened; the
#: ascending one joins what the descending one drew).
AORTA_FOLLOWERS = {"enhanced_aorta_lumen": draw_enhanced_aorta_lumen,
                   "descending_aorta": follow_descending_aorta,
                   "unenhanced_ascending_aorta": follow_unenhanced_ascending_aorta}


def _run_aorta_follower(follower, labelmap, label_set, ct_hu, spacing_ijk, direction, key: str,
                        settings: AortaFollowSettings) -> tuple[np.ndarray, AortaFollowReport]:
    """Run ``follower`` (an :class:`_AortaFollower` class) on a view of a copy of the label map with the long
    axis first and superior up; (the new label map, its report)."""
    labels, spacing = checked_label_inputs(labelmap, ct_hu, spacing_ijk)
    structure = label_set.by_key(key)  # InputError naming the label set's keys
    long_axis, superior_up = array_axis_along(direction, 2)
    ap_axis, posterior_up = array_axis_along(direction, 1)
    out = labels.copy()
    report = AortaFollowReport()
    order, out_v, hu_v, sp = _slice_views(out, ct_hu, spacing, long_axis)
    if not superior_up:  # index increasing towards the head: the slices below are the lower indices
        out_v, hu_v = out_v[::-1], hu_v[::-1]
    ap_in_slice = order.index(ap_axis) - 1  # 0: rows of a slice, 1: its columns
    forward = -1.0 if posterior_up else 1.0  # sign of an index step towards the front of the body
    follower(out_v, hu_v, structure.value, sp, ap_in_slice, forward, settings, report)()
    return out, report


class _CircleFit(NamedTuple):
    """The circle :meth:`_AortaFollower._fit_disc` fits on one slice."""

    centre: np.ndarray  # (row, column) on the slice, voxels
    radius_mm: float
    support: float  # the fraction of its outline lying on the tissue's edge
    disc: np.ndarray  # bool (J, I): the circle's tissue voxels


class _AortaFollower:
    """What both aorta followers share: slices of a view with the long axis first, superior up (writes into
    ``labels``), the circle fit, drawing."""

    #: the radius (mm) of the opening of each circle's tissue (see _fit_disc); none for the descending aorta
    opening_mm = 0.0

    def __init__(self, labels, hu, value, sp, ap_in_slice, forward, settings: AortaFollowSettings,
                 report: AortaFollowReport):
        self.labels, self.hu, self.value, self.sp = labels, hu, value, sp
        self.ap_in_slice, self.forward, self.settings, self.report = ap_in_slice, forward, settings, report
        self.pixel_mm2 = sp[1] * sp[2]
        self.last_fit: tuple[int, _CircleFit] | None = None  # the last circle _follow_circles drew, with its slice

    def _draw(self, k: int, section: np.ndarray) -> None:
        """Label ``section``'s background voxels on slice k as aorta, counting the slice when it held none."""
        if not (self.labels[k] == self.value).any():
            self.report.slices_added += 1
        self.labels[k][section & (self.labels[k] == 0)] = self.value

    def _fit_disc(self, k: int, centre, radius_mm: tuple[float, float], step_mm: float,
                  level: float) -> _CircleFit | None:
        """The circle on slice k best fitting the edge of the voxels at or above ``level`` (smoothed), its centre
        within ``step_mm`` of ``centre`` (row, column) and its radius within ``radius_mm``; its disc is the
        circle's voxels at or above the level (opened by a disc of ``opening_mm``, the largest piece). None where
        the window holds no edge."""
        from skimage.transform import hough_circle

        px = float(np.mean(self.sp[1:]))  # Hough circles in pixels: in-plane spacing taken as square
        radii = np.arange(max(int(np.floor(radius_mm[0] / px)), 2), int(np.ceil(radius_mm[1] / px)) + 1)
        reach = int(np.ceil((radius_mm[1] + step_mm) / px)) + 2
        J, I = self.hu.shape[1:]
        cj, ci = int(round(centre[0])), int(round(centre[1]))
        rows = slice(max(cj - reach, 0), min(cj + reach + 1, J))
        cols = slice(max(ci - reach, 0), min(ci + reach + 1, I))
        tissue = self._tissue(k, rows, cols, level)
        edge = tissue & ~ndi.binary_erosion(tissue)
        if not edge.any():
            return None
        votes = hough_circle(edge, radii)  # normalised: the fraction of each circle's outline on the edge
        votes[:, self._distance_mm(edge.shape, centre, origin=(rows.start, cols.start)) > step_mm] = 0
        n, j, i = np.unravel_index(int(np.argmax(votes)), votes.shape)
        radius = (radii[n] + 0.5) * px  # the edge voxels' centres lie half a voxel inside the edge
        within = tissue & (self._distance_mm(edge.shape, (j, i)) <= radius)
        if self.opening_mm > 0:  # thin tissue the smoothing joined to the vessel (a pericardial sheath) comes off
            within = _opened(within, self.opening_mm / px)
        inside, _ = ndi.label(within)
        disc = np.zeros(self.hu.shape[1:], bool)
        if inside.max():  # a sliver cut off by fat at the circle's rim is not the aorta
            disc[rows, cols] = inside == np.argmax(np.bincount(inside.ravel())[1:]) + 1
        return _CircleFit(np.array([j + rows.start, i + cols.start], float), float(radius), float(votes[n, j, i]),
                          disc)

    def _tissue(self, k: int, rows: slice, cols: slice, level: float) -> np.ndarray:
        """bool (rows, columns): the voxels of slice k's window at or above ``level`` (HU) after a Gaussian of
        ``edge_smoothing_mm``: the unenhanced aorta's soft tissue, whose edge the circles are fitted to."""
        px = float(np.mean(self.sp[1:]))
        smoothed = ndi.gaussian_filter(self.hu[k][rows, cols].astype(np.float32), self.settings.edge_smoothing_mm / px)
        return smoothed >= level

    def _edge_level(self, blood: float, fat: np.ndarray, too_little: str) -> float | None:
        """The unenhanced aorta's edge level (HU): halfway between the blood's HU and the median of ``fat`` (the HU
        of the fat voxels near the aorta, 1-D), recorded in the report with the fat's median; None, with the reason
        (``too_little`` first), when there are fewer than ``min_fat_voxels`` of them."""
        s = self.settings
        if fat.size < s.min_fat_voxels:
            self.report.reason = (f"{too_little} to find its edge ({fat.size} voxels of {s.fat_hu[0]:.0f} to "
                                  f"{s.fat_hu[1]:.0f} HU)")
            return None
        background = float(np.median(fat))
        self.report.background_hu, self.report.level_hu = background, background + 0.5 * (blood - background)
        return self.report.level_hu

    def _follow_circles(self, k: int, fit: _CircleFit, reference_radius: float, level: float, step: int,
                        join: np.ndarray | None = None) -> str:
        """Draw the circle fitted on each slice from slice k + ``step`` on (``step`` -1: down, +1: up), each
        within ``radius_range`` of ``reference_radius`` (mm) and ``radius_change`` of the previous circle, its
        centre within ``max_disc_step_mm``, until its edge gives out or it meets another structure; where it
        touches ``join`` (bool (K, J, I), e.g. the network's arch) it is drawn and the track ends there. Returns
        why it stopped ("" at the scan's end)."""
        s = self.settings
        centre, radius = fit.centre, fit.radius_mm
        for k in range(k + step, self.labels.shape[0] if step > 0 else -1, step):
            low = max(s.radius_range[0] * reference_radius, (1 - s.radius_change) * radius)
            high = min(s.radius_range[1] * reference_radius, (1 + s.radius_change) * radius)
            fit = self._fit_disc(k, centre, (low, max(high, low)), s.max_disc_step_mm, level)
            if fit is None or fit.support < s.min_edge_support:
                return (f"the aorta's edge gave out at slice {k} (support "
                        f"{0 if fit is None else fit.support:.2f} < {s.min_edge_support:.2f})")
            centre, radius = fit.centre, fit.radius_mm
            others = (self.labels[k] != 0) & (self.labels[k] != self.value)
            if (fit.disc & others).any():
                return f"the aorta met another structure at slice {k}"
            self._draw(k, fit.disc)
            self.last_fit = (k, fit)
            if join is not None and (fit.disc & join[k]).any():
                return f"joined the network's aorta at slice {k}"
        return ""

    def _ring_hu(self, reference) -> np.ndarray:
        """The HU of the voxels ``ring_mm`` from the reference cross-sections that are not lung (1-D)."""
        s, ring = self.settings, []
        for k, section in reference:
            window = self._window(section, s.ring_mm[1] + max(self.sp[1:]))
            distance = ndi.distance_transform_edt(~section[window], sampling=self.sp[1:])
            hu = self.hu[k][window]
            ring.append(hu[(distance > s.ring_mm[0]) & (distance <= s.ring_mm[1]) & (hu > s.lung_below_hu)])
        return np.concatenate(ring)

    def _front_and_back(self, section_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(frontmost, hindmost) aorta cross-sections of one slice's aorta (bool (J, I)), each at least
        ``min_section_mm2``, when the frontmost lies at least ``ascending_ahead_mm`` in front of the hindmost (the
        ascending and the descending aorta); None otherwise."""
        s = self.settings
        pieces, n = ndi.label(section_mask)
        areas = np.bincount(pieces.ravel(), minlength=n + 1)[1:] * self.pixel_mm2
        whole = np.flatnonzero(areas >= s.min_section_mm2) + 1  # a stray voxel or two is no aorta
        if whole.size < 2:
            return None
        centres = np.array(ndi.center_of_mass(section_mask, pieces, whole))
        forward_mm = centres[:, self.ap_in_slice] * self.forward * self.sp[1 + self.ap_in_slice]
        front, back = int(np.argmax(forward_mm)), int(np.argmin(forward_mm))
        if forward_mm[front] - forward_mm[back] < s.ascending_ahead_mm:
            return None
        return pieces == whole[front], pieces == whole[back]

    def _distance_mm(self, shape, centre, origin=(0, 0)) -> np.ndarray:
        """Distance (mm) from ``centre`` (row, column on the slice) of each voxel of a (rows, columns) window of
        the slice starting at ``origin``."""
        jj, ii = np.indices(shape)
        return np.hypot((jj + origin[0] - centre[0]) * self.sp[1], (ii + origin[1] - centre[1]) * self.sp[2])

    @staticmethod
    def _centre(section) -> np.ndarray:
        return np.array(ndi.center_of_mass(section))

    def _radius(self, section) -> float:
        return float(np.sqrt(section.sum() * self.pixel_mm2 / np.pi))

    def _window(self, section: np.ndarray, margin_mm: float) -> tuple[slice, slice]:
        """The slice's (rows, columns) within ``margin_mm`` of ``section``'s bounding box: each slice's work is
        done there, not on the whole 512 x 512 slice."""
        jj, ii = np.nonzero(section.any(axis=1))[0], np.nonzero(section.any(axis=0))[0]
        mj, mi = (int(np.ceil(margin_mm / self.sp[1])), int(np.ceil(margin_mm / self.sp[2])))
        J, I = section.shape
        return slice(max(jj[0] - mj, 0), min(jj[-1] + mj + 1, J)), slice(max(ii[0] - mi, 0), min(ii[-1] + mi + 1, I))


class _DescendingAortaFollower(_AortaFollower):
    """One run of :func:`follow_descending_aorta`."""

    def __call__(self) -> None:
        s, report = self.settings, self.report
        mask = self.labels == self.value
        ks = np.flatnonzero(mask.any(axis=(1, 2)))
        if not ks.size:
            report.reason = "no aorta to follow"
            return
        start = self._descending_aorta_end(mask, int(ks[0]))
        if start is None:
            report.reason = ("no slice within {:.0f} mm of the aorta's lower end holds the descending aorta behind the "
                             "ascending aorta (from the root the track would run into the left ventricle)"
                             ).format(s.ascending_within_mm)
            return
        chain = self._chain_up(mask, *start)
        areas = np.array([section.sum() for _, section in chain], float)
        full = [(k, section) for k, section in chain if section.sum() >= s.full_fraction * np.median(areas)]
        reference = full[:s.reference_slices]
        if len(reference) < 2:
            report.reason = "the network's lowest aorta is too short to measure"
            return
        lumen = float(np.median(np.concatenate([self.hu[k][section] for k, section in reference])))
        report.lumen_hu = lumen
        enhanced = lumen >= s.min_lumen_hu
        low, high = s.unenhanced_blood_hu
        if not enhanced and not (s.follow_unenhanced and low <= lumen <= high):
            report.reason = (f"unenhanced (lumen {lumen:.0f} HU < {s.min_lumen_hu:.0f})" if low <= lumen <= high else
                             f"neither enhanced nor unenhanced blood (lumen {lumen:.0f} HU: below "
                             f"{s.min_lumen_hu:.0f} and outside {low:.0f}-{high:.0f})")
            return
        ring_hu = self._ring_hu(reference)
        if not enhanced:
            self._follow_unenhanced(reference, lumen, ring_hu)
            return
        background = min(float(np.median(ring_hu)) if ring_hu.size else s.max_background_hu, s.max_background_hu)
        level = background + 0.5 * (lumen - background)
        report.background_hu, report.level_hu = background, level
        offsets, lumens = [], []
        for k, section in reference:
            found = self._lumen_on(k, section, level)
            if found is None:
                continue
            lumens.append((k, found))
            offsets.append(self._radius(section) - self._radius(found))
        if not lumens:
            report.reason = "no lumen at half maximum on the network's lowest slices"
            return
        offset = float(np.clip(np.median(offsets), -s.max_edge_offset_mm, s.max_edge_offset_mm))
        report.edge_offset_mm = offset
        start, previous = lumens[0]
        report.followed = True
        report.reason = "reached the scan's lower edge"
        for k in range(start - 1, -1, -1):
            section, why = self._next_lumen(k, previous, level)
            if section is None:
                report.reason = why
                break
            self._draw(k, self._grow(section, offset))
            previous = section

    def _follow_unenhanced(self, reference, blood: float, ring_hu: np.ndarray) -> None:
        """Follow an unenhanced descending aorta down as a circle fitted to its edge with the fat and the lung
        (see :class:`AortaFollowSettings`), from the lowest reference slice to where the edge gives out."""
        s, report = self.settings, self.report
        level = self._edge_level(blood, ring_hu[(ring_hu >= s.fat_hu[0]) & (ring_hu <= s.fat_hu[1])],
                                 "unenhanced, and too little fat beside the aorta")
        if level is None:
            return
        fits = []
        for k, section in reference:
            r = self._radius(section)
            fit = self._fit_disc(k, self._centre(section), (s.reference_radius_range[0] * r,
                                                            s.reference_radius_range[1] * r), s.max_disc_step_mm, level)
            if fit is not None and fit.support >= s.min_edge_support:
                fits.append((k, fit))
        if not fits:
            report.reason = "unenhanced, and no round edge round the network's lowest aorta"
            return
        reference_radius = float(np.median([fit.radius_mm for _, fit in fits]))
        k, fit = fits[0]
        report.followed = True
        self._draw(k, fit.disc)
        report.reason = self._follow_circles(k, fit, reference_radius, level, -1) or "reached the scan's lower edge"

    def _descending_aorta_end(self, mask, k0: int) -> tuple[int, np.ndarray] | None:
        """(slice, cross-section) of the lower end of the network's descending aorta, or None.

        The descending aorta is the hindmost cross-section on the lowest slice (from ``k0`` up, within
        ``ascending_within_mm``) that holds another aorta cross-section at least ``ascending_ahead_mm`` in front
        of it; from there it is followed down through overlapping cross-sections to its lowest slice."""
        s = self.settings
        top = min(k0 + int(round(s.ascending_within_mm / self.sp[0])) + 1, mask.shape[0])
        for k in range(k0, top):
            found = self._front_and_back(mask[k])
            if found is None:
                continue
            section = found[1]
            while k > 0:
                below, _ = ndi.label(mask[k - 1])
                overlap = np.bincount(below[section], minlength=below.max() + 1)
                overlap[0] = 0
                if not overlap.any():
                    break
                section, k = below == int(np.argmax(overlap)), k - 1
            return k, section
        return None

    def _chain_up(self, mask, k0: int, section: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(slice, cross-section) of the aorta going up from ``section`` on slice ``k0``: on each slice above, the
        piece overlapping the last most, within ``reference_reach_mm``, until none does."""
        chain = [(k0, section)]
        for k in range(k0 + 1, min(k0 + int(round(self.settings.reference_reach_mm / self.sp[0])), mask.shape[0])):
            pieces, _ = ndi.label(mask[k])
            overlap = np.bincount(pieces[chain[-1][1]], minlength=pieces.max() + 1)
            overlap[0] = 0
            if not overlap.any():
                break
            chain.append((k, pieces == int(np.argmax(overlap))))
        return chain

    def _lumen_on(self, k: int, near: np.ndarray, level: float) -> np.ndarray | None:
        """The half-maximum lumen on slice k overlapping ``near`` (bool (J, I)), branches opened off; or None."""
        radius = self._radius(near)
        window = self._window(near, 2 * radius + self.settings.max_step_mm)
        radius_px = self.settings.branch_opening * radius / min(self.sp[1:])
        above = self.hu[k][window] >= level
        opened = _opened(above, radius_px) if radius_px >= 1 else above
        pieces, _ = ndi.label(opened)
        overlap = np.bincount(pieces[near[window]], minlength=pieces.max() + 1)
        overlap[0] = 0
        if not overlap.any():
            return None
        inside = pieces == int(np.argmax(overlap))
        inside = self._split_from_neighbours(inside, near[window], radius)
        # a branch's stump that survives the opening reaches farther from the centre than the aorta's wall
        jj, ii = np.nonzero(inside)
        far = np.hypot((jj - jj.mean()) * self.sp[1], (ii - ii.mean()) * self.sp[2]) > self.settings.max_reach * radius
        inside[jj[far], ii[far]] = False
        section = np.zeros_like(near)
        section[window] = inside
        return section

    def _split_from_neighbours(self, piece: np.ndarray, near: np.ndarray, radius: float) -> np.ndarray:
        """``piece`` without a bright neighbour it touches across a neck (a vertebral body, an enhanced vein or
        organ): a watershed of its distance map between the lumen's core (within half the previous radius of the
        previous centre) and whatever lies beyond ``split_beyond`` previous radii from that centre."""
        from skimage.segmentation import watershed

        distance = self._distance_mm(piece.shape, self._centre(near))
        beyond = piece & (distance > self.settings.split_beyond * radius)
        core = piece & (distance <= 0.5 * radius)
        if not beyond.any() or not core.any():
            return piece
        markers = np.zeros(piece.shape, np.int32)
        markers[core], markers[beyond] = 1, 2
        depth = ndi.distance_transform_edt(piece, sampling=self.sp[1:])
        return watershed(-depth, markers, mask=piece) == 1

    def _next_lumen(self, k: int, previous: np.ndarray, level: float) -> tuple[np.ndarray | None, str]:
        s = self.settings
        section = self._lumen_on(k, previous, level)
        if section is None:
            return None, f"lost the lumen at slice {k}"
        area, last = section.sum(), previous.sum()
        if not s.area_change[0] * last <= area <= s.area_change[1] * last:
            return None, f"the lumen's area changed from {last * self.pixel_mm2:.0f} to {area * self.pixel_mm2:.0f} mm² at slice {k}"
        jj, ii = np.nonzero(section)
        extent = max((np.ptp(jj) + 1) * self.sp[1], (np.ptp(ii) + 1) * self.sp[2])
        roundness = area * self.pixel_mm2 / (np.pi * (extent / 2) ** 2)
        if roundness < s.min_roundness:
            return None, f"the lumen stopped being round at slice {k} ({roundness:.2f})"
        step = np.hypot(*((self._centre(section) - self._centre(previous)) * np.array(self.sp[1:])))
        if step > s.max_step_mm:
            return None, f"the lumen's centre moved {step:.1f} mm at slice {k}"
        others = (self.labels[k] != 0) & (self.labels[k] != self.value)
        if (section & others).any():
            return None, f"the lumen met another structure at slice {k}"
        return section, ""

    def _grow(self, section: np.ndarray, offset_mm: float) -> np.ndarray:
        """``section`` grown by ``offset_mm`` (shrunk where negative), on its slice."""
        if abs(offset_mm) < 1e-6:
            return section
        window = self._window(section, abs(offset_mm) + 2 * max(self.sp[1:]))
        grown = np.zeros_like(section)
        if offset_mm > 0:
            grown[window] = ndi.distance_transform_edt(~section[window], sampling=self.sp[1:]) <= offset_mm
        else:
            grown[window] = ndi.distance_transform_edt(section[window], sampling=self.sp[1:]) > -offset_mm
        return grown


class _EnhancedLumenWidener(_AortaFollower):
    """One run of :func:`draw_enhanced_aorta_lumen`."""

    def __call__(self) -> None:
        s, report = self.settings, self.report
        mask = self.labels == self.value
        ks = np.flatnonzero(mask.any(axis=(1, 2)))
        if not ks.size:
            report.reason = "nothing to widen"
            return
        # a small piece apart from the aorta's large ones (a branch's stump, a pulmonary vessel taken for aorta)
        # is left as it is: widened, a false piece would take in the whole of the vessel it lies in
        pieces_3d, n = ndi.label(mask, np.ones((3, 3, 3), bool))
        volumes = np.bincount(pieces_3d.ravel(), minlength=n + 1)[1:]
        mask = np.isin(pieces_3d, np.flatnonzero(volumes >= s.min_piece_fraction * volumes.max()) + 1)
        sections = []  # (slice, cross-section) of every cross-section of those pieces
        whole = []  # the ones of at least min_section_mm2, whose lumen and surroundings give the HU
        core = []  # the HU of each of those one voxel inside its edge: the lumen, not its partial-volume rim
        for k in ks:
            pieces, n = ndi.label(mask[k])
            areas = np.bincount(pieces.ravel(), minlength=n + 1)[1:] * self.pixel_mm2
            for value in range(1, n + 1):
                section = pieces == value
                sections.append((int(k), section))
                if areas[value - 1] >= s.min_section_mm2:
                    whole.append((int(k), section))
                    window = self._window(section, 0.0)
                    core.append(self.hu[k][window][ndi.binary_erosion(section[window])])
        if not whole:
            report.reason = f"no cross-section reaches {s.min_section_mm2:.0f} mm²"
            return
        lumen = float(np.median(np.concatenate(core))) if sum(c.size for c in core) else float("nan")
        report.lumen_hu = lumen
        if not lumen >= s.min_lumen_hu:
            report.reason = f"not enhanced (lumen {lumen:.0f} HU < {s.min_lumen_hu:.0f})"
            return
        # The ring around a core drawn well inside the lumen lies in the lumen: a first level from it (capped), then
        # the ring around the lumen that level finds gives the surrounding tissue's HU. Measured on at most
        # reference_sections cross-sections spread along the aorta (each ring is a distance transform).
        whole = [whole[i] for i in np.unique(np.linspace(0, len(whole) - 1, s.reference_sections).round().astype(int))]
        level = None
        for _ in range(2):
            around = whole if level is None else [(k, w) for k, w in ((k, self._widened(k, section, level))
                                                                      for k, section in whole) if w is not None]
            ring_hu = self._ring_hu(around) if around else np.zeros(0)
            if level is not None and not ring_hu.size:
                break  # no lumen found at the first level: keep it
            background = min(float(np.median(ring_hu)) if ring_hu.size else s.max_background_hu, s.max_background_hu)
            level = background + 0.5 * (lumen - background)
        report.background_hu, report.level_hu = background, level
        added = kept = 0
        for k, section in sections:
            widened = self._widened(k, section, level)
            if widened is None:
                kept += 1
                continue
            taken = widened & (self.labels[k] == 0)  # only background becomes aorta
            added += int(taken.sum())
            self.labels[k][taken] = self.value
        report.widened_ml = added * self.pixel_mm2 * self.sp[0] / 1000.0
        report.followed = added > 0
        report.reason = (f"{len(sections) - kept} of {len(sections)} cross-sections widened to the lumen"
                         + (f"; {kept} left as drawn (not round or too wide at half maximum)" if kept else ""))

    def _widened(self, k: int, section: np.ndarray, level: float) -> np.ndarray | None:
        """``section`` (bool (J, I) on slice k) with the unlabelled voxels at or above ``level`` connected to it within
        ``widen_mm`` of it, opened; None where that does not close within ``widen_mm``, is not round or too wide."""
        s = self.settings
        band = 2 * max(self.sp[1:])  # looked at beyond widen_mm, to see whether the lumen ends within it
        window = self._window(section, s.widen_mm + band + max(self.sp[1:]))
        own = section[window]
        distance = ndi.distance_transform_edt(~own, sampling=self.sp[1:])
        lumen = own | ((distance <= s.widen_mm + band) & (self.labels[k][window] == 0) & (self.hu[k][window] >= level))
        pieces, _ = ndi.label(lumen)
        lumen = pieces == pieces[own].max()  # own is one connected piece: the one holding it
        radius = float(np.sqrt(lumen.sum() * self.pixel_mm2 / np.pi))
        radius_px = s.branch_opening * radius / min(self.sp[1:])
        if radius_px >= 1:  # a branch or a bright neighbour touching across a neck comes off
            pieces, _ = ndi.label(_opened(lumen, radius_px))
            overlap = np.bincount(pieces[own], minlength=pieces.max() + 1)
            overlap[0] = 0
            if overlap.any():
                lumen = (pieces == int(np.argmax(overlap))) | own
        if (lumen & (distance > s.widen_mm)).any():
            return None  # it runs on: into a bright chamber or vein against the aorta, or along the arch
        # round: no voxel farther from the centre than widen_max_reach equivalent radii (a disc 1.0, an ellipse of axes
        # 4:5 1.12; a bright vessel against the aorta makes a bulge that reaches farther)
        jj, ii = np.nonzero(lumen)
        radius = float(np.sqrt(jj.size * self.pixel_mm2 / np.pi))
        reach = float(np.hypot((jj - jj.mean()) * self.sp[1], (ii - ii.mean()) * self.sp[2]).max())
        if reach > s.widen_max_reach * radius + 0.5 * max(self.sp[1:]) or radius > s.max_lumen_radius_mm:
            return None
        out = np.zeros_like(section)
        out[window] = lumen
        return out


class _AscendingAortaFollower(_AortaFollower):
    """One run of :func:`follow_unenhanced_ascending_aorta`."""

    @property
    def opening_mm(self) -> float:
        return self.settings.ascending_opening_mm

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drawn: list[tuple[int, np.ndarray]] = []  # (slice, disc) in the order drawn, for _remove_beside

    def _draw(self, k: int, section: np.ndarray) -> None:
        super()._draw(k, section)
        self.drawn.append((k, section))

    def __call__(self) -> None:
        s, report = self.settings, self.report
        mask = self.labels == self.value
        if not mask.any():
            report.reason = "no aorta to follow"
            return
        chain, descending = self._ascending_chain(mask)
        if not chain:
            report.reason = "the network found no ascending aorta in front of the descending aorta"
            return
        blood = float(np.median(np.concatenate([self.hu[k][section] for k, section in chain])))
        report.lumen_hu = blood
        low, high = s.unenhanced_blood_hu
        if not low <= blood <= high:
            report.reason = (f"not unenhanced blood ({blood:.0f} HU, outside {low:.0f}-{high:.0f}): the network's "
                             "ascending aorta is kept as drawn")
            return
        level = self._edge_level(blood, self._fat_near(chain), "too little fat near the ascending aorta")
        if level is None:
            return
        fits = []
        for k, section in chain:
            # the network's core may lie off the vessel's centre: search as far as its own radius beyond the step
            fit = self._fit_disc(k, self._centre(section), s.ascending_radius_mm,
                                 s.max_disc_step_mm + self._radius(section), level)
            if fit is not None and fit.support >= s.min_edge_support:
                fits.append((k, fit))
        if not fits:
            report.reason = "no round edge round the network's ascending aorta"
            return
        reference_radius = float(np.median([fit.radius_mm for _, fit in fits]))
        k, fit = min(fits, key=lambda kf: abs(kf[1].radius_mm - reference_radius))
        report.followed = True
        self._draw(k, fit.disc)
        self.last_fit = (k, fit)
        up = self._follow_circles(k, fit, reference_radius, level, +1, join=descending) or "reached the scan's top"
        top = self.last_fit
        down = self._follow_circles(k, fit, reference_radius, level, -1) or "reached the scan's lower edge"
        report.reason = f"up: {up}; down: {down}"
        self._remove_beside(descending)
        if up.startswith("the aorta's edge gave out"):  # not where it met the arch, another structure or the top
            report.reason += f"; arch: {self._join_over_the_arch(*top, level, descending)}"

    def _join_over_the_arch(self, k_top: int, top: _CircleFit, level: float, descending: np.ndarray) -> str:
        """Join the ascending aorta to the network's arch over the arch's top, above slice ``k_top`` where the
        circle track gave out (``top``: its last circle); returns what it did, for the report.

        Where the ascending aorta turns into the arch its axial cross-section stretches back and to the left
        towards the descending aorta, so no circle fits it; without contrast the network may label only the
        arch's back part (LIDC-IDRI-0002: slices 181-192, where the two pieces lie 1-2 mm apart). On each slice
        above the last circle, up to ``arch_reach_mm`` above it, the arch is the soft tissue (at or above the
        edge level, opened by ``ascending_opening_mm``; other structures' voxels left out) within the last
        circle's radius of the segment from its centre to the nearest voxel of the network's arch (``descending``
        on that slice: at least ``min_section_mm2``, within ``arch_gap_mm`` of the circle), joined to that arch
        and reaching within half a radius of the circle's centre. It stops where the network's arch ends, lies
        too far, or no soft tissue joins the two."""
        s = self.settings
        px = float(np.mean(self.sp[1:]))
        centre, radius = top.centre, top.radius_mm
        last = k_top + int(round(s.arch_reach_mm / self.sp[0]))
        joined, why = [], f"reached {s.arch_reach_mm:.0f} mm above the last circle"
        if last >= self.labels.shape[0]:
            last, why = self.labels.shape[0] - 1, "reached the scan's top"
        around = np.zeros(descending.shape[1:], bool)  # the window holds the last circle and the network's arch
        around[tuple(np.clip(int(round(c)), 0, n - 1) for c, n in zip(centre, around.shape))] = True
        for k in range(k_top + 1, last + 1):
            arch = descending[k]
            if arch.sum() * self.pixel_mm2 < s.min_section_mm2:
                why = f"the network's arch ends at slice {k}"
                break
            rows, cols = self._window(arch | around, radius + s.arch_gap_mm + 2 * px)
            origin = (rows.start, cols.start)
            network = arch[rows, cols]
            from_centre = self._distance_mm(network.shape, centre, origin)
            jj, ii = np.nonzero(network)
            nearest = int(np.argmin(from_centre[jj, ii]))
            if from_centre[jj[nearest], ii[nearest]] > radius + s.arch_gap_mm:
                why = f"the network's arch lies more than {s.arch_gap_mm:.0f} mm beyond the circle at slice {k}"
                break
            capsule = self._segment_distance_mm(network.shape, centre - origin, (jj[nearest], ii[nearest])) <= radius
            labels = self.labels[k][rows, cols]
            tissue = capsule & self._tissue(k, rows, cols, level) & ((labels == 0) | (labels == self.value))
            tissue = _opened(tissue, s.ascending_opening_mm / px)
            pieces, _ = ndi.label(tissue | network)
            bridge = (pieces == pieces[jj[nearest], ii[nearest]]) & tissue
            if not (bridge & (from_centre <= radius / 2)).any():
                why = f"no soft tissue joins the ascending aorta to the network's arch at slice {k}"
                break
            section = np.zeros(arch.shape, bool)
            section[rows, cols] = bridge
            joined.append((k, int((bridge & (labels == 0)).sum())))  # the voxels _draw labels
            self._draw(k, section)
        if not joined:
            return f"not joined to the network's arch ({why})"
        self.report.joined_over_arch_ml = sum(n for _, n in joined) * self.pixel_mm2 * self.sp[0] / 1000.0
        return (f"joined to the network's arch over its top on slices {joined[0][0]}-{joined[-1][0]} "
                f"({self.report.joined_over_arch_ml:.1f} mL; then {why})")

    def _segment_distance_mm(self, shape, start, end) -> np.ndarray:
        """Distance (mm) of each voxel of a (rows, columns) window from the segment between two points (row,
        column) of it."""
        scale = np.array(self.sp[1:], float)
        jj, ii = np.indices(shape)
        p = (np.stack([jj - start[0], ii - start[1]], -1)) * scale
        v = (np.asarray(end, float) - np.asarray(start, float)) * scale
        t = np.clip(p @ v / max(float(v @ v), 1e-9), 0.0, 1.0)
        return np.linalg.norm(p - t[..., None] * v, axis=-1)

    def _remove_beside(self, descending: np.ndarray) -> None:
        """On the slices drawn, remove the aorta that is neither in the drawn disc nor in ``descending`` (bool
        (K, J, I), the network's aorta connected to the descending aorta): a third cross-section below the arch is
        another vessel. A piece of it (connected through the slices drawn) is kept when it lies within
        ``beside_rim_mm`` of the disc on every slice (the disc's own edge, where the network drew the vessel a
        little wider than the circle) or touches ``descending`` (where the ascending aorta turns into the arch, the
        arch's underside reaches back towards the descending aorta behind the circle)."""
        if not self.drawn:
            return
        px = float(np.mean(self.sp[1:]))
        ks = [k for k, _ in self.drawn]
        first = min(ks)
        beside = np.zeros((max(ks) - first + 1,) + self.labels.shape[1:], bool)
        beyond = np.zeros_like(beside)
        for k, disc in self.drawn:
            beside[k - first] = (self.labels[k] == self.value) & ~disc & ~descending[k]
            beyond[k - first] = beside[k - first] & ~ndi.binary_dilation(disc, _disc(self.settings.beside_rim_mm / px))
        if not beyond.any():
            return
        cube = np.ones((3, 3, 3), bool)
        pieces, _ = ndi.label(beside, structure=cube)
        below = max(first - 1, 0)  # the descending aorta one slice beyond the drawn ones touches them too
        around = ndi.binary_dilation(descending[below:first + len(beside) + 1], cube)
        touching = around[first - below:first - below + len(beside)]
        keep = np.unique(pieces[beside & touching])
        gone_ids = np.setdiff1d(np.unique(pieces[beyond]), keep)
        gone = np.isin(pieces, gone_ids[gone_ids > 0])
        self.labels[first:first + beside.shape[0]][gone] = 0
        self.report.removed_ml = float(gone.sum()) * self.pixel_mm2 * self.sp[0] / 1000.0

    def _ascending_chain(self, mask) -> tuple[list[tuple[int, np.ndarray]], np.ndarray]:
        """(the ascending aorta's cross-sections [(slice, bool (J, I))], the network's other aorta (bool (K, J, I))
        that holds the descending aorta).

        On each slice with an ascending and a descending cross-section (:meth:`_front_and_back`) the frontmost is
        the ascending aorta's; the longest run of them overlapping from slice to slice is the chain. The other
        aorta is the network's aorta connected to the descending cross-sections, without the chain."""
        box = ndi.find_objects(mask.astype(np.uint8))[0]  # the work is done in the aorta's bounding box
        runs, run, inside = [], [], mask[box]
        descending_seeds = np.zeros_like(inside)
        for k in range(inside.shape[0]):
            found = self._front_and_back(inside[k]) if inside[k].any() else None
            if found is not None:
                descending_seeds[k] = found[1]
            if found is not None and run and run[-1][0] == k - 1 and (run[-1][1] & found[0]).any():
                run.append((k, found[0]))
                continue
            if run:
                runs.append(run)
            run = [(k, found[0])] if found is not None else []
        if run:
            runs.append(run)
        other = np.zeros_like(mask)
        if not runs:
            return [], other
        chain, rest = [], inside.copy()
        for k, section in max(runs, key=len):
            rest[k] &= ~section
            whole = np.zeros(mask.shape[1:], bool)
            whole[box[1:]] = section
            chain.append((k + box[0].start, whole))
        pieces, _ = ndi.label(rest)
        held = np.unique(pieces[descending_seeds & rest])
        other[box] = np.isin(pieces, held[held > 0])
        return chain, other

    def _fat_near(self, chain) -> np.ndarray:
        """HU of the unlabelled voxels of ``fat_hu`` within ``fat_search_mm`` of the chain's cross-sections (1-D)."""
        s, fat = self.settings, []
        for k, section in chain:
            window = self._window(section, s.fat_search_mm + max(self.sp[1:]))
            near = ndi.distance_transform_edt(~section[window], sampling=self.sp[1:]) <= s.fat_search_mm
            hu = self.hu[k][window]
            fat.append(hu[near & (self.labels[k][window] == 0) & (hu >= s.fat_hu[0]) & (hu <= s.fat_hu[1])])
        return np.concatenate(fat)


def _opened(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """``mask`` (bool (J, I)) opened by the disc of ``radius_px`` (:func:`_disc`), outside the array counting as
    background: the same as ``ndi.binary_opening(mask, _disc(radius_px))``, through two distance transforms
    instead of two passes of a disc of hundreds of voxels."""
    padded = np.pad(mask, 1)
    eroded = ndi.distance_transform_edt(padded) > radius_px
    if not eroded.any():
        return np.zeros_like(mask)
    return (ndi.distance_transform_edt(~eroded) <= radius_px)[1:-1, 1:-1]


def _disc(radius_px: float) -> np.ndarray:
    r = int(np.ceil(radius_px))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= radius_px * radius_px
