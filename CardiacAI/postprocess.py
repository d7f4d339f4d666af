"""Clean-up of predicted label maps, the body mask, and whether each structure is really there.

Label maps are integer numpy arrays in (k, j, i) = (slice, row, column) order with 0 as
background, as :class:`CardiacAI.image.Image` arrays; spacing is (i, j, k) in mm as
:attr:`Image.spacing`. Every function returns a new array and leaves its input untouched; each
works inside the bounding box of one structure at a time (``scipy.ndimage.find_objects``), so a
512 x 512 x 300 CT grid costs little more than the structures it holds.

Anatomy rules (:data:`ANATOMY_RULES`, used by :func:`clean_labelmap`): a heart chamber, the
myocardium, the pulmonary artery trunk and the superior vena cava are one connected object, so
only one connected component is kept: the one that shares the most border with the heart's chambers and
myocardium, i.e. the piece that is part of the heart (:func:`keep_component_in_contact`), not simply the
largest (a network can call a liver dome of 105 mL "left ventricular cavity", larger than the real cavity,
which lies against the myocardium and the left atrium). Structures that may legitimately come in pieces
keep every component above a minimum volume instead: the pulmonary veins (four separate veins),
the aorta (ascending and descending aorta are separate when the field of view ends below the
arch, as in most cardiac CT), and thin vessels (coronary sinus, internal mammary arteries), which
partial-volume effects can break. The veins that drain into the heart (pulmonary veins, coronary sinus) keep
only the pieces near its chambers (:func:`keep_components_near`). Thin vessels are never opened, closed or smoothed, so they stay
thin. An internal mammary artery piece must also run at least 30 mm, together with the pieces within
30 mm of it along the body's long axis and 9 mm across (:data:`IMA_GAP_MM`: the artery broken by partial
volume and by stretches the network misses): the artery runs 15-20 cm down the chest wall, and
short bright pieces elsewhere are other vessels. It must also lie in front of the lung
(:func:`remove_pieces_behind_lung`): the artery runs on the inside of the anterior chest wall, in front of
the pleura, so a piece with lung between it and the front of the chest is a pulmonary vessel; and it must lie in
soft tissue (:func:`remove_pieces_in_bone`): a piece wrapped in bone is the sternum's marrow or a rib. An aorta piece
centred far from the body's midline is something else (:func:`remove_pieces_off_midline`); one narrower than the
aorta lying wholly above it, or a part joined to the aorta above its top through a narrow neck, is one of the arch's
branches (:func:`remove_branches_above`). Perivascular regions are
derived from their vessels (:mod:`CardiacAI.perivascular`) and are left alone here.

Presence (:func:`structure_presence`): a structure outside the field of view is reported as absent
with the reason, never kept as a hallucination (issue #4).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi

from .coordinates import array_axis_along
from .errors import InputError
from .image import Image

#: HU at or below which a CT voxel is padding outside the reconstruction circle (scanners pad with
#: -2000, -2048 or -3024); real tissue and air are >= -1024 HU.
FOV_PADDING_HU = -1500.0
#: HU above which a voxel counts as body tissue for :func:`body_mask_from_ct` (lung is below it,
#: but lies inside the body outline and is filled in slice by slice).
BODY_THRESHOLD_HU = -500.0


# -- connected components and holes ----------------------------------------------------------------


def largest_component(mask: np.ndarray, structure: np.ndarray | None = None) -> np.ndarray:
    """The largest connected component of a boolean mask (K, J, I), as a bool array of the same shape.

    ``structure`` is the ``scipy.ndimage.label`` connectivity (default: faces only). Ties keep the
    component met first in (k, j, i) order. An empty mask gives an empty result.
    """
    components, count = ndi.label(mask, structure=structure)
    if count <= 1:
        return components > 0
    sizes = component_sizes(components, count)
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def component_sizes(components: np.ndarray, count: int) -> np.ndarray:
    """Voxel count of each label 0..count of a ``scipy.ndimage.label`` result (int64 array, count + 1).

    Counted a block at a time: ``np.bincount`` of the whole int32 grid would first copy it to int64
    (8 bytes a voxel, 0.5 GB for a 512 x 512 x 260 CT).
    """
    flat = components.reshape(-1)
    sizes = np.zeros(count + 1, np.int64)
    step = 1 << 20
    for start in range(0, flat.size, step):
        sizes += np.bincount(flat[start:start + step], minlength=count + 1)
    return sizes


def keep_largest_component(labelmap: np.ndarray, values: Iterable[int] | None = None, *,
                           connectivity: int = 3) -> np.ndarray:
    """Keep only the largest connected component of each structure; other components become 0.

    Parameters
    ----------
    labelmap: integer array (K, J, I), 0 = background, values >= 0.
    values: label values to process (default: every non-zero value present).
    connectivity: 1 (6-neighbourhood), 2 (18) or 3 (26, default: thin diagonal vessels stay one
        component).

    Returns a new array of the same dtype. Ties keep the component met first in (k, j, i) order.

    Raises InputError for a non-integer, non-3D or negative-valued label map.
    """
    out = _checked_copy(labelmap)
    _keep_largest_in_place(out, _boxes(out, values), _structure(connectivity))
    return out


def _keep_largest_in_place(out: np.ndarray, boxes, structure: np.ndarray) -> None:
    for value, box in boxes:
        sub = out[box]
        mask = sub == value
        sub[mask & ~largest_component(mask, structure)] = 0


def keep_component_in_contact(labelmap: np.ndarray, values: Iterable[int] | None = None, *,
                              touching: Iterable[int] | None = None, connectivity: int = 3) -> np.ndarray:
    """Keep, of each structure, the connected component that touches the given structures most.

    A component's contact is the number of voxels of the ``touching`` structures next to it (in the
    26-neighbourhood: its outer one-voxel shell), counted on ``labelmap`` as given, so the result does not
    depend on the order in which structures are processed. A heart chamber lies against the myocardium and
    the other chambers, the superior vena cava opens into the right atrium; a piece the network put in the
    liver, or beside the descending aorta, touches them little or not at all, however large it is. Ties
    (e.g. no contact at all) keep the largest component, then the one met first in (k, j, i) order.

    Parameters
    ----------
    labelmap: integer array (K, J, I), 0 = background, values >= 0.
    values: label values to process (default: every non-zero value present).
    touching: label values whose voxels count as contact (default: every non-zero value); a value's own
        voxels never count.
    connectivity: 1, 2 or 3 (26, default): how a structure's own voxels connect into components.

    Returns a new array of the same dtype; the other components become 0. Where one voxel touches two
    components of the value, it counts for one of them only.

    Raises InputError for a non-integer, non-3D or negative-valued label map.
    """
    out = _checked_copy(labelmap)
    _keep_in_contact_in_place(out, _boxes(out, values), _structure(connectivity),
                              None if touching is None else {int(v) for v in touching})
    return out


def _keep_in_contact_in_place(out: np.ndarray, boxes, structure: np.ndarray, touching: set[int] | None,
                              given: np.ndarray | None = None) -> None:
    # contacts are measured on the label map as it came in (``given``), so the result does not depend on
    # the order in which the structures are cleaned
    if given is None:
        given = out.copy() if len(boxes) > 1 else out
    shape = out.shape
    for value, box in boxes:
        # the box grown by one voxel, so that the shell of a component on the box's side is seen
        grown = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, shape))
        sub, ref = out[grown], given[grown]
        mask = ref == value
        components, count = ndi.label(mask, structure=structure)
        if count <= 1:
            continue
        # each voxel of a touching structure takes the (largest) component index in its 3 x 3 x 3 neighbourhood
        near = ndi.maximum_filter(components, size=3, mode="constant", cval=0)
        other = (ref != 0) if touching is None else np.isin(ref, sorted(touching))
        other &= ~mask
        contact = np.bincount(near[other], minlength=count + 1)[: count + 1]
        sizes = component_sizes(components, count)
        contact[0], sizes[0] = -1, -1
        # lexsort: the last key is the primary one; the order's last entry is the best component
        best = int(np.lexsort((-np.arange(count + 1), sizes, contact))[-1])
        sub[mask & (components != best)] = 0


def remove_small_components(labelmap: np.ndarray, values: Iterable[int] | None, spacing_ijk,
                            min_volume_mm3: float | Mapping[int, float], *, connectivity: int = 3,
                            min_extent_mm: Mapping[int, float] | None = None,
                            gap_mm: Mapping[int, float] | None = None) -> np.ndarray:
    """Remove connected components smaller than a volume, keeping all larger ones (thin vessels).

    Parameters
    ----------
    labelmap: integer array (K, J, I), 0 = background.
    values: label values to process (default None: every non-zero value present).
    spacing_ijk: voxel size (i, j, k) in mm.
    min_volume_mm3: smallest component kept, in mm³; one number for all values or a mapping
        value -> mm³ (values missing from the mapping are not processed).
    connectivity: 1, 2 or 3 (26-neighbourhood, default).
    min_extent_mm: value -> mm: a component of that value is also removed when its bounding box is
        shorter than this on every axis (a vessel piece too short to be that vessel).
    gap_mm: value -> mm: for ``min_extent_mm``, the bounding box is that of all the value's pieces
        within this distance of each other (a vessel broken by partial volume measured whole); one
        number, or three (k, j, i) for a gap that differs per array axis (each piece then grown by an
        ellipsoid with half those lengths as semi-axes).

    Returns a new array; removed voxels become 0.

    Raises InputError for a bad label map, spacing or negative volume.
    """
    out = _checked_copy(labelmap)
    _remove_small_in_place(out, _boxes(out, values), spacing_ijk, min_volume_mm3, _structure(connectivity),
                           min_extent_mm, gap_mm)
    return out


def keep_components_overlapping(labelmap: np.ndarray, region: tuple[slice, slice, slice],
                                values: Iterable[int] | None = None, *, connectivity: int = 3) -> np.ndarray:
    """Keep only the connected components that have at least one voxel inside ``region``.

    Parameters
    ----------
    labelmap: integer array (K, J, I), 0 = background.
    region: (k, j, i) index box of the same grid (e.g. the band a structure is expected in).
    values: label values to process (default: every non-zero value present).
    connectivity: 1, 2 or 3 (26-neighbourhood, default).

    Returns a new array; components wholly outside ``region`` become 0, so a structure that crosses the
    region's side is kept whole. Raises InputError for a bad label map or connectivity.
    """
    out = _checked_copy(labelmap)
    structure = _structure(connectivity)
    for value, box in _boxes(out, values):
        sub = out[box]
        mask = sub == value
        components, count = ndi.label(mask, structure=structure)
        # the region in the coordinates of the value's box (empty where they do not meet)
        inner = tuple(slice(max(r.start - b.start, 0), max(min(r.stop, b.stop) - b.start, 0))
                      for r, b in zip(region, box))
        inside = np.zeros(count + 1, bool)
        inside[np.unique(components[inner])] = True
        inside[0] = True  # background stays as it is
        sub[~inside[components]] = 0
    return out


def keep_components_near(labelmap: np.ndarray, values: Iterable[int], near: Iterable[int], spacing_ijk,
                         distance_mm: float, *, reference: np.ndarray | None = None,
                         connectivity: int = 3) -> np.ndarray:
    """Keep only the connected components that come within a distance of other structures.

    A vein that drains into the heart (a pulmonary vein into the left atrium, the coronary sinus into the right
    atrium) lies against it; a piece the network put in the lung or the liver, tens of millimetres from any
    chamber, is something else, however many pieces the structure may have.

    Parameters
    ----------
    labelmap: integer array (K, J, I), 0 = background.
    values: label values to process (only these lose components).
    near: label values a kept component must come within ``distance_mm`` of (Euclidean, between voxel
        centres, in mm).
    spacing_ijk: voxel size (i, j, k) in mm.
    distance_mm: the largest distance kept, >= 0 (0: only components that overlap ``near``, which cannot
        happen in one label map, so nothing is kept; a component next to a ``near`` voxel is one spacing away).
    reference: the label map on which ``near`` is read (default ``labelmap`` itself), e.g. the map before
        other structures were cleaned, so that the result does not depend on the order of the clean-up.
    connectivity: 1, 2 or 3 (26-neighbourhood, default).

    Returns a new array; components farther than ``distance_mm`` from every ``near`` voxel become 0 (all of
    them when no ``near`` structure is present). Each component's distance is measured in its own bounding box
    grown by ``distance_mm``, so a small piece costs little however large the grid.

    Raises InputError for a bad label map, spacing, connectivity, a negative or non-finite distance, or a
    ``reference`` of another shape.
    """
    out = _checked_copy(labelmap)
    reference = out.copy() if reference is None else np.asarray(reference)
    if reference.shape != out.shape:
        raise InputError(f"reference label map {reference.shape} differs from the label map {out.shape}",
                         "pass a reference on the same grid")
    _keep_near_in_place(out, _boxes(out, values), spacing_ijk, {int(v): (sorted({int(n) for n in near}),
                                                                         float(distance_mm)) for v in values},
                        _structure(connectivity), reference)
    return out


def _keep_near_in_place(out: np.ndarray, boxes, spacing_ijk, spec: Mapping[int, tuple[list[int], float]],
                        structure: np.ndarray, reference: np.ndarray) -> None:
    spacing_kji = _spacing(spacing_ijk)[::-1]
    for value, box in boxes:
        targets, limit = spec[value]
        if not (math.isfinite(limit) and limit >= 0):
            raise InputError(f"distance {limit} mm for label {value} is not a non-negative number")
        sub = out[box]
        components, count = ndi.label(sub == value, structure=structure)
        if count == 0:
            continue
        reach = np.ceil(limit / spacing_kji).astype(int)
        keep = np.zeros(count + 1, bool)
        for index, piece in enumerate(ndi.find_objects(components), start=1):
            # the piece's box in the whole grid, grown by the distance (clipped to the grid)
            grown = tuple(slice(max(b.start + p.start - r, 0), min(b.start + p.stop + r, n))
                          for b, p, r, n in zip(box, piece, reach, out.shape))
            target = np.isin(reference[grown], targets)
            if not target.any():
                continue
            mine = np.zeros(target.shape, bool)
            own = tuple(slice(b.start + p.start - g.start, b.start + p.stop - g.start)
                        for b, p, g in zip(box, piece, grown))
            mine[own] = components[piece] == index
            distance = ndi.distance_transform_edt(~target, sampling=spacing_kji)
            keep[index] = float(distance[mine].min()) <= limit + 1e-6
        keep[0] = True
        sub[~keep[components]] = 0


def _remove_small_in_place(out: np.ndarray, boxes, spacing_ijk, min_volume_mm3, structure: np.ndarray,
                           min_extent_mm: Mapping[int, float] | None = None,
                           gap_mm: Mapping[int, float] | None = None) -> None:
    voxel_mm3 = float(np.prod(_spacing(spacing_ijk)))
    spacing_kji = np.asarray(_spacing(spacing_ijk), float)[::-1]
    for value, box in boxes:
        if isinstance(min_volume_mm3, Mapping):
            if value not in min_volume_mm3:
                continue
            limit = float(min_volume_mm3[value])
        else:
            limit = float(min_volume_mm3)
        if not limit >= 0:
            raise InputError(f"minimum component volume {limit} mm³ for label {value} is not a non-negative number")
        sub = out[box]
        mask = sub == value
        components, count = ndi.label(mask, structure=structure)
        if count == 0:
            continue
        sizes_mm3 = np.bincount(components.ravel()) * voxel_mm3
        small = sizes_mm3 < limit
        if min_extent_mm and value in min_extent_mm:
            runs = _runs(components, count, mask, spacing_kji, (gap_mm or {}).get(value, 0.0))
            small[1:] |= runs < float(min_extent_mm[value])
        small[0] = False
        if small.any():
            sub[small[components]] = 0


def _runs(components: np.ndarray, count: int, mask: np.ndarray, spacing_kji: np.ndarray,
          gap_mm: float | Sequence[float]) -> np.ndarray:
    """The run (mm, the longest side of the bounding box) of each component 1..count of ``components``,
    taken over the pieces of ``mask`` that lie within ``gap_mm`` of each other (a thin vessel broken by
    partial volume counts as one vessel): float array (count,). ``gap_mm``: one length, or one per array
    axis (k, j, i).

    Two pieces are within the gap when, each grown by a ball of half the gap (an ellipsoid with half the
    per-axis gaps as semi-axes), they touch or overlap
    (26-neighbourhood). That is decided on the pieces' surface voxels alone, as pairs of voxels whose
    offset lies in :func:`_gap_offsets`: an IMA's few hundred voxels in a box of ten million cost
    milliseconds, where growing the whole box cost a second on a 512 x 512 x 261 scan."""

    def run(lo, hi) -> float:
        return float(max((b - a) * d for a, b, d in zip(lo, hi, spacing_kji)))

    boxes = ndi.find_objects(components)
    lo = np.array([[s.start for s in box] for box in boxes])
    hi = np.array([[s.stop for s in box] for box in boxes])
    gaps = np.broadcast_to(np.asarray(gap_mm, float), (3,))
    if np.all(gaps <= 0):
        return np.array([run(a, b) for a, b in zip(lo, hi)], float)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    offsets = _gap_offsets(spacing_kji, gaps)
    centre = np.array(offsets.shape) // 2
    points = _surface_voxels(mask)
    piece = components[tuple(points.T)]
    # candidate pairs within the largest offset's length, kept where the offset itself is one
    reach_mm = float(np.sqrt((((np.argwhere(offsets) - centre) * spacing_kji) ** 2).sum(axis=1).max()))
    pairs = cKDTree(points * spacing_kji).query_pairs(reach_mm + 1e-6, output_type="ndarray")
    pairs = pairs[piece[pairs[:, 0]] != piece[pairs[:, 1]]]
    delta = np.abs(points[pairs[:, 0]] - points[pairs[:, 1]])
    inside = np.all(delta <= centre, axis=1)
    pairs, delta = pairs[inside], delta[inside]
    pairs = pairs[offsets[tuple((centre + delta).T)]]
    a, b = piece[pairs[:, 0]] - 1, piece[pairs[:, 1]] - 1
    graph = coo_matrix((np.ones(len(a), bool), (a, b)), shape=(count, count))
    _, group = connected_components(graph, directed=False)
    group_lo = np.full((group.max() + 1, 3), np.iinfo(np.int64).max)
    group_hi = np.zeros((group.max() + 1, 3), np.int64)
    np.minimum.at(group_lo, group, lo)
    np.maximum.at(group_hi, group, hi)
    return np.array([run(group_lo[g], group_hi[g]) for g in group], float)


def _gap_offsets(spacing_kji: np.ndarray, gap_mm: float | Sequence[float]) -> np.ndarray:
    """Voxel offsets (k, j, i) at which two voxels, each grown by a ball of radius ``gap_mm`` / 2
    (the grid points within that distance in mm), touch or overlap: a centred boolean array, symmetric
    and closed under steps towards its centre (so a nearest pair of two pieces is found on their
    surfaces). ``gap_mm`` per array axis (k, j, i) grows them by an ellipsoid with semi-axes half those gaps;
    a gap of 0 on an axis allows no offset along it."""
    gaps = np.broadcast_to(np.asarray(gap_mm, float), (3,))
    radius = np.floor(gaps / 2 / spacing_kji + 1e-9).astype(int)
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    # scaled to the largest gap, so that equal gaps give the ball exactly (a factor of 1.0)
    largest = float(gaps.max())
    scale = [largest / g if g > 0 else 0.0 for g in gaps]
    ball = sum((g * d * f) ** 2 for g, d, f in zip(grid, spacing_kji, scale)) <= (largest / 2) ** 2
    # ball + ball + one voxel each way: (4 r + 3) voxels per axis, centred
    return _minkowski_sum(_minkowski_sum(ball, ball), np.ones((3, 3, 3), bool))


def _minkowski_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minkowski sum of two centred bool arrays of odd sizes: the offsets a + b, as a centred bool array of shape
    ``a.shape + b.shape - 1`` (nothing clipped). The same as dilating ``a``, zero-padded to that shape, by a
    symmetric ``b`` (:func:`scipy.ndimage.binary_dilation`), but as the convolution of the two indicator arrays by
    FFT, whose values count the pairs (integers, rounding errors far below 0.5): the IMA gap's offsets on a
    0.7 x 0.7 x 2.5 mm scan take 0.6 ms instead of 57 ms."""
    shape = tuple(x + y - 1 for x, y in zip(a.shape, b.shape))
    axes = tuple(range(a.ndim))
    counts = np.fft.irfftn(np.fft.rfftn(a, shape, axes) * np.fft.rfftn(b, shape, axes), shape, axes)
    return counts > 0.5


def _surface_voxels(mask: np.ndarray) -> np.ndarray:
    """(n, 3) int indices (k, j, i) of the voxels of ``mask`` with a 6-neighbour outside it."""
    padded = np.pad(mask, 1)
    points = np.argwhere(mask)
    at = points + 1
    surface = np.zeros(len(points), bool)
    for axis in range(3):
        for step in (-1, 1):
            near = at.copy()
            near[:, axis] += step
            surface |= ~padded[tuple(near.T)]
    return points[surface]


def fill_holes(labelmap: np.ndarray, values: Iterable[int] | None = None) -> np.ndarray:
    """Fill enclosed holes of each structure, without taking voxels from other structures.

    A hole is a 6-connected region of voxels that are not the structure, enclosed by it in 3D
    (not reaching the structure's bounding box, hence not the outside or the volume's edge). It
    is filled only when every voxel in it is background: a cavity holding another structure (the
    LV cavity inside the myocardium) stays as it is, and so do background voxels next to it.

    Parameters
    ----------
    labelmap: integer array (K, J, I), 0 = background.
    values: label values to process (default: every non-zero value present).

    Returns a new array of the same dtype.
    """
    out = _checked_copy(labelmap)
    _fill_holes_in_place(out, _boxes(out, values))
    return out


def _fill_holes_in_place(out: np.ndarray, boxes) -> None:
    face_connected = ndi.generate_binary_structure(3, 1)
    for value, box in boxes:
        sub = out[box]
        outside = sub != value
        regions, count = ndi.label(outside, structure=face_connected)
        if count == 0:
            continue
        open_to_outside = np.zeros(count + 1, bool)
        for face in _faces(regions):
            open_to_outside[np.unique(face)] = True
        # a region holding any labelled voxel of another structure is not filled
        holds_other = np.zeros(count + 1, bool)
        holds_other[np.unique(regions[outside & (sub != 0)])] = True
        fillable = ~open_to_outside & ~holds_other
        fillable[0] = False
        if fillable.any():
            sub[fillable[regions]] = value


#: Post-processing per structure key: ("in_contact", keys) keeps the component that touches the structures
#: ``keys`` most (:func:`keep_component_in_contact`); ("largest",) the largest component; ("components", mm³)
#: keeps every component of at least that volume; ("near", keys, mm³, mm) those of them within mm of ``keys``
#: (:func:`keep_components_near`); ("none",) leaves the structure alone. Thresholds
#: are far below the smallest real piece (a 1-cm stretch of a 2-mm IMA is 31 mm³; one 2.5-mm
#: slice of a 20-mm descending aorta is 785 mm³) and well above isolated mis-classified voxels.
#: Pieces of an internal mammary artery this close count as one artery for its 30 mm run, (along, across) the
#: body's long axis in mm: partial volume and a stretch the network misses break a 2-3 mm artery along its
#: course, so its pieces line up down the chest wall. Across, 9 mm allows the artery's drift over such a stretch
#: (the real left IMA of LIDC-IDRI-0001 moves 0.2 mm sideways per mm down) plus its width. On that scan the
#: network broke it into pieces 17.5 mm apart; on the synthetic tuning scans this grouping changed only
#: non-contrast scans, by keeping true pieces (docs/segmentation.md). Until 2026-11-22: 6 mm every way.
IMA_GAP_MM = (30.0, 9.0)

#: The heart itself, what a heart chamber, the myocardium and the vessels that open into the heart lie against.
#: The great vessels are left out: the descending and abdominal aorta run far from the heart, and a false piece
#: beside them (a "superior vena cava" against the lower aorta on a synthetic test scan) touches them only.
HEART_CHAMBERS_AND_WALL = ("left_atrium", "left_ventricle_cavity", "left_ventricle_myocardium", "right_atrium",
                           "right_ventricle_cavity")

#: How far (mm) from the heart's chambers and myocardium a piece of a vein that drains into the heart (pulmonary
#: veins, coronary sinus) may lie. On the synthetic tuning scans (seeds 800000-800002, four protocols) every true
#: piece the whole-heart model found lay within 6.7 mm of them (nearly all against them), every false one 40-102 mm
#: away (in the lung, the liver, the chest wall). On LIDC-IDRI-0001 a piece at the right hilum lies 14.8 mm away
#: and two in the anterior chest wall 59 and 83 mm: 25 mm keeps a margin on both sides. Until 2026-11-22 every
#: piece over the minimum volume was kept.
VEIN_NEAR_HEART_MM = 25.0

ANATOMY_RULES: dict[str, tuple] = {
    "pulmonary_veins": ("near", HEART_CHAMBERS_AND_WALL, 100.0, VEIN_NEAR_HEART_MM),
    "left_atrium": ("in_contact", HEART_CHAMBERS_AND_WALL),
    "left_ventricle_cavity": ("in_contact", HEART_CHAMBERS_AND_WALL),
    "left_ventricle_myocardium": ("in_contact", HEART_CHAMBERS_AND_WALL),
    "aorta": ("components", 500.0),
    "coronary_sinus": ("near", HEART_CHAMBERS_AND_WALL, 20.0, VEIN_NEAR_HEART_MM),
    "superior_vena_cava": ("in_contact", HEART_CHAMBERS_AND_WALL),
    "right_atrium": ("in_contact", HEART_CHAMBERS_AND_WALL),
    "right_ventricle_cavity": ("in_contact", HEART_CHAMBERS_AND_WALL),
    "pulmonary_artery": ("in_contact", HEART_CHAMBERS_AND_WALL),
    # an IMA runs 15-20 cm down the chest wall; a short bright piece elsewhere (an intercostal or
    # abdominal vessel) is not one, even when the network calls it so
    "left_internal_mammary_artery": ("elongated", 10.0, 30.0, IMA_GAP_MM),
    "right_internal_mammary_artery": ("elongated", 10.0, 30.0, IMA_GAP_MM),
    "peri_ima_region": ("none",),
    "periaortic_region": ("none",),
}


def _gap_per_axis(gap, long_axis: int):
    """A rule's gap as mm per array axis (k, j, i): one number for every axis, or (along_mm, across_mm) with
    ``along_mm`` on ``long_axis``. Raises InputError for anything else."""
    if np.ndim(gap) == 0:  # any real number, numpy's included
        return float(gap)
    if np.ndim(gap) != 1 or len(gap) != 2:
        raise InputError(f"a gap is one length in mm or a pair (along_mm, across_mm), got {gap!r}")
    per_axis = [float(gap[1])] * 3
    per_axis[long_axis] = float(gap[0])
    return tuple(per_axis)


def clean_labelmap(labelmap: np.ndarray, label_set, spacing_ijk,
                   rules: Mapping[str, tuple] | None = None, *, long_axis: int = 0) -> np.ndarray:
    """Apply the anatomy rules to a predicted label map: components per structure, then holes.

    Parameters
    ----------
    labelmap: integer array (K, J, I) with the values of ``label_set``.
    label_set: a :class:`CardiacAI.labels.LabelSet` (``.structures`` with ``.key`` and ``.value``).
    spacing_ijk: voxel size (i, j, k) in mm.
    rules: structure key -> rule, overriding :data:`ANATOMY_RULES`; keys without a rule get
        ("components", 10.0). Rules: ("in_contact", keys) keeps the connected component that touches the
        structures ``keys`` most (:func:`keep_component_in_contact`; contacts as ``labelmap`` gives them);
        ("largest",) keeps the largest connected component;
        ("components", mm3) every component of at least mm3; ("elongated", mm3, mm) every component
        of at least mm3 whose bounding box is at least mm long on some axis (a vessel's run);
        ("elongated", mm3, mm, gap_mm) the same, the run measured over all the structure's pieces
        that lie within gap_mm of each other (a thin vessel broken by partial volume is one vessel);
        gap_mm may be a pair (along_mm, across_mm): the gap along ``long_axis`` and across it (a vessel
        that runs down the body is broken along its course, not beside it);
        ("near", keys, mm3, distance_mm) every component of at least mm3 that comes within distance_mm of the
        structures ``keys`` (:func:`keep_components_near`), read on the map after the ("in_contact", ...) and
        ("largest",) structures are cleaned (a vein beside a false piece of a chamber is not kept for it);
        ("none",) leaves the structure alone.
    long_axis: the array axis (0 = k, 1 = j, 2 = i) closest to the patient's superior-inferior axis
        (k for axial slices; :func:`CardiacAI.coordinates.array_axis_along` gives it from the direction).

    Hole filling (:func:`fill_holes`) follows for every structure whose rule is not ("none",).

    Raises InputError for an unknown rule, a gap that is neither one length nor a pair, or a ``long_axis``
    other than 0, 1 or 2.
    """
    if long_axis not in (0, 1, 2):
        raise InputError(f"long_axis must be 0, 1 or 2 (k, j, i), got {long_axis!r}",
                         "pass the array axis closest to superior-inferior (0 for axial slices)")
    table = dict(ANATOMY_RULES)
    table.update(rules or {})
    values = {structure.key: structure.value for structure in label_set.structures}
    in_contact, largest, minimum, min_extent, gap, near, fill = {}, [], {}, {}, {}, {}, []
    for structure in label_set.structures:
        rule = table.get(structure.key, ("components", 10.0))
        if rule[0] == "in_contact" and len(rule) == 2:
            in_contact[structure.value] = {values[key] for key in rule[1] if key in values}
        elif rule[0] == "largest":
            largest.append(structure.value)
        elif rule[0] == "components":
            minimum[structure.value] = float(rule[1])
        elif rule[0] == "near" and len(rule) == 4:
            minimum[structure.value] = float(rule[2])
            near[structure.value] = (sorted(values[key] for key in rule[1] if key in values), float(rule[3]))
        elif rule[0] == "elongated" and len(rule) in (3, 4):
            minimum[structure.value] = float(rule[1])
            min_extent[structure.value] = float(rule[2])
            gap[structure.value] = _gap_per_axis(rule[3], long_axis) if len(rule) == 4 else 0.0
        elif rule[0] != "none":
            raise InputError(f"unknown post-processing rule {rule!r} for '{structure.key}'",
                             "use ('in_contact', keys), ('largest',), ('components', mm3), ('near', keys, mm3, mm), "
                             "('elongated', mm3, mm[, gap_mm or (along_mm, across_mm)]) "
                             "or ('none',)")
        if rule[0] != "none":
            fill.append(structure.value)
    # The steps of keep_component_in_contact, keep_largest_component, remove_small_components and fill_holes
    # on one copy, with one pass over the grid for the bounding boxes: all but the last only remove voxels,
    # so each structure's box shrinks at most and is re-measured inside its old box for the holes.
    out = _checked_copy(labelmap)
    boxes = dict(_boxes(out, None))
    # contacts are counted on the map as the network gave it, for every structure alike
    given = out.copy() if in_contact else out
    for value in sorted(in_contact):
        if value in boxes:
            _keep_in_contact_in_place(out, [(value, boxes[value])], _structure(3), in_contact[value], given)
    _keep_largest_in_place(out, [(v, boxes[v]) for v in sorted(set(largest)) if v in boxes], _structure(3))
    # the chambers as kept: what a vein must lie near
    cleaned = out.copy() if near else out
    _remove_small_in_place(out, [(v, boxes[v]) for v in sorted(minimum) if v in boxes], spacing_ijk, minimum,
                           _structure(3), min_extent, gap)
    _keep_near_in_place(out, [(v, boxes[v]) for v in sorted(near) if v in boxes], spacing_ijk, near, _structure(3),
                        cleaned)
    changed = set(in_contact) | set(largest) | set(minimum)
    fill_boxes = []
    for value in sorted(set(fill)):
        box = boxes.get(value)
        if box is not None and value in changed:
            inner = ndi.find_objects((out[box] == value).view(np.uint8))
            box = None if not inner or inner[0] is None else tuple(
                slice(b.start + s.start, b.stop + s.start) for b, s in zip(inner[0], box))
        if box is not None:
            fill_boxes.append((value, box))
    _fill_holes_in_place(out, fill_boxes)
    return out


# -- structures of the anterior chest wall -------------------------------------------------------------

#: Structures that run on the inside of the anterior chest wall, in front of the lungs: the internal
#: mammary (thoracic) arteries lie behind the costal cartilages and in front of the pleura.
IN_FRONT_OF_LUNG = ("left_internal_mammary_artery", "right_internal_mammary_artery")
#: HU below which a voxel inside the body counts as lung for :func:`remove_pieces_behind_lung`.
LUNG_BELOW_HU = -400.0
#: How much lung (mm, along the anterior-posterior axis) may lie between the front of the body and a piece of
#: a structure of :data:`IN_FRONT_OF_LUNG` (the median over its voxels). On LIDC-IDRI-0001 the real IMAs have
#: 0-0.7 mm of lung in front of them on every slice; the pulmonary vessels that IMA models took for IMAs on
#: the non-contrast LIDC-IDRI-0002 had 29-118 mm.
MAX_LUNG_IN_FRONT_MM = 10.0


def anterior_axis(direction) -> tuple[int, bool]:
    """(axis, anterior_first) for an image's 3x3 LPS ``direction`` (columns: i, j, k): the array axis of a
    (K, J, I) array (0 = k, 1 = j, 2 = i) whose index direction is closest to the patient's
    anterior-posterior axis (LPS y), and whether index 0 on it is the patient's front (True for the usual
    axial scan, whose j runs to posterior)."""
    return array_axis_along(direction, 1)


def lung_in_front_mm(ct_hu: np.ndarray, body: np.ndarray, spacing_ijk, direction, voxels) -> np.ndarray:
    """Millimetres of lung between the front of the body and each of ``voxels``, along the anterior-posterior
    axis (:func:`anterior_axis`).

    ``ct_hu``: CT in HU, (K, J, I); ``body``: the body mask on the same grid, bool (lung inside counts, air
    outside does not); ``spacing_ijk``: voxel size (i, j, k) in mm; ``direction``: the image's 3x3 LPS
    direction; ``voxels``: (k, j, i) index arrays of equal length n (as ``np.nonzero`` gives). Lung is a body
    voxel below :data:`LUNG_BELOW_HU`; a voxel's own lung counts. Only the columns through ``voxels`` are
    read (counting the lung over a bounding box cost 1.4 s per IMA on LIDC-IDRI-0002, whose false pieces
    spread wide). Returns float32 (n,) in mm. Raises InputError when the arrays differ in shape."""
    if ct_hu.shape != body.shape:
        raise InputError(f"CT {ct_hu.shape} and body mask {body.shape} differ in shape",
                         "pass the body mask of the same grid (body_mask_from_ct)")
    voxels = [np.asarray(v, dtype=np.intp).reshape(-1) for v in voxels]
    if voxels[0].size == 0:
        return np.zeros(0, np.float32)
    axis, anterior_first = anterior_axis(direction)
    step = np.float32(_spacing(spacing_ijk)[2 - axis])  # spacing is (i, j, k), axes (k, j, i)
    n = ct_hu.shape[axis]
    depth = voxels[axis] if anterior_first else n - 1 - voxels[axis]  # index from the front
    rest = [a for a in range(3) if a != axis]
    columns, inverse = np.unique(np.stack([voxels[a] for a in rest]), axis=1, return_inverse=True)
    line = np.arange(int(depth.max()) + 1)
    index = [None, None, None]
    index[rest[0]], index[rest[1]] = columns[0][:, None], columns[1][:, None]
    index[axis] = (line if anterior_first else n - 1 - line)[None, :]
    lung = (ct_hu[tuple(index)] < LUNG_BELOW_HU) & body[tuple(index)]  # (columns, depth from the front)
    return np.cumsum(lung, axis=1, dtype=np.int32)[inverse.reshape(-1), depth] * step


def remove_pieces_behind_lung(labelmap: np.ndarray, label_set, ct_hu: np.ndarray, body: np.ndarray,
                              spacing_ijk, direction, max_lung_mm: float = MAX_LUNG_IN_FRONT_MM,
                              keys: Iterable[str] = IN_FRONT_OF_LUNG) -> np.ndarray:
    """Remove the connected pieces (26-connectivity) of the structures ``keys`` that lie behind the lung.

    A piece is removed when the median, over its voxels, of :func:`lung_in_front_mm` exceeds
    ``max_lung_mm`` (mm). ``labelmap``: integer (K, J, I) with the values of ``label_set``; ``ct_hu``,
    ``body``, ``spacing_ijk``, ``direction`` as for :func:`lung_in_front_mm`, on the same grid. Keys not
    in ``label_set`` are skipped. Returns a new label map. Raises InputError for arrays of different
    shapes or a non-integer label map."""
    out = _checked_copy(labelmap)
    if ct_hu.shape != out.shape or body.shape != out.shape:
        raise InputError(f"label map {out.shape}, CT {ct_hu.shape} and body mask {body.shape} differ in shape",
                         "pass the CT the label map was predicted from and its body mask")
    values = [s.value for s in label_set.structures if s.key in set(keys)]

    def behind(value, box, voxels, ids, count):
        lung_mm = lung_in_front_mm(ct_hu, body, spacing_ijk, direction, [v + b.start for v, b in zip(voxels, box)])
        return [piece for piece in range(1, count + 1) if np.median(lung_mm[ids == piece]) > max_lung_mm]

    _drop_pieces(out, values, behind)
    return out


#: Structures that run in the soft tissue behind the costal cartilages, never inside bone: the internal mammary
#: arteries lie in fat and intercostal muscle beside the sternum, behind the cartilages.
IN_SOFT_TISSUE = IN_FRONT_OF_LUNG
#: HU above which a voxel of a piece's shell counts as dense for :func:`remove_pieces_in_bone`: bone (sternal
#: marrow and cortex read 150-1000 HU) and calcified cartilage; fat, muscle and unenhanced blood read below 100 HU.
DENSE_ABOVE_HU = 150.0
#: The shell around a piece that :func:`remove_pieces_in_bone` reads: voxels more than 1 and at most 3 mm from it
#: (the next millimetre belongs to the artery's own partial-volume edge; 3 mm reaches the tissue it lies in).
DENSE_SHELL_MM = (1.0, 3.0)
#: Largest fraction of a piece's shell that may be dense. The shells of the real IMAs of LIDC-IDRI-0001 are 0.02-0.06
#: dense (0.04-0.06 for the right one, which starts beside the contrast-filled brachiocephalic vein), those of every
#: IMA piece on the synthetic tuning scans at most 0.10; the false right IMA pieces in the sternum of the
#: non-contrast LIDC-IDRI-0002 0.30-0.32.
MAX_DENSE_SHELL_FRACTION = 0.2


def dense_shell_fraction(ct_hu: np.ndarray, voxels, spacing_ijk,
                         shell_mm: tuple[float, float] = DENSE_SHELL_MM,
                         dense_above_hu: float = DENSE_ABOVE_HU) -> float:
    """Fraction of the shell around an object (the voxels more than ``shell_mm[0]`` and at most ``shell_mm[1]`` mm
    from it, by Euclidean distance) whose CT value exceeds ``dense_above_hu`` (HU).

    ``ct_hu``: CT in HU, (K, J, I); ``voxels``: the object's (k, j, i) index arrays of equal length (as
    ``np.nonzero`` gives); ``spacing_ijk``: voxel size (i, j, k) in mm. Only a box around the object is read; the
    shell is cut at the array's edge. Returns 0.0 for an object without voxels or shell. Raises InputError for
    a spacing that is not three positive numbers."""
    spacing_kji = _spacing(spacing_ijk)[::-1]
    voxels = [np.asarray(v, dtype=np.intp).reshape(-1) for v in voxels]
    if voxels[0].size == 0:
        return 0.0
    margin = np.ceil(shell_mm[1] / spacing_kji).astype(int) + 1
    lo = [max(int(v.min()) - m, 0) for v, m in zip(voxels, margin)]
    box = tuple(slice(a, min(int(v.max()) + m + 1, n)) for a, v, m, n in zip(lo, voxels, margin, ct_hu.shape))
    outside = np.ones([b.stop - b.start for b in box], bool)
    outside[tuple(v - a for v, a in zip(voxels, lo))] = False
    distance = ndi.distance_transform_edt(outside, sampling=spacing_kji)
    shell = (distance > shell_mm[0]) & (distance <= shell_mm[1])
    if not shell.any():
        return 0.0
    return float(np.mean(ct_hu[box][shell] > dense_above_hu))


def remove_pieces_in_bone(labelmap: np.ndarray, label_set, ct_hu: np.ndarray, spacing_ijk,
                          max_dense_fraction: float = MAX_DENSE_SHELL_FRACTION,
                          keys: Iterable[str] = IN_SOFT_TISSUE) -> np.ndarray:
    """Remove the connected pieces (26-connectivity) of the structures ``keys`` that lie inside bone.

    A piece is removed when more than ``max_dense_fraction`` of its shell (:func:`dense_shell_fraction`: 1-3 mm
    around it, above :data:`DENSE_ABOVE_HU`) is dense. An internal mammary artery runs in soft tissue behind the
    costal cartilages, so a piece wrapped in bone is the sternum's marrow or a rib, whatever the scan's contrast
    (with contrast the artery itself reads 200-500 HU, as bone does, so its own HU cannot tell them apart).
    ``labelmap``: integer (K, J, I) with the values of ``label_set``; ``ct_hu``: the CT in HU on the same grid;
    ``spacing_ijk``: voxel size (i, j, k) in mm. Keys not in ``label_set`` are skipped. Returns a new label map.
    Raises InputError for arrays of different shapes or a non-integer label map."""
    out = _checked_copy(labelmap)
    if ct_hu.shape != out.shape:
        raise InputError(f"label map {out.shape} and CT {ct_hu.shape} differ in shape",
                         "pass the CT the label map was predicted from")
    values = [s.value for s in label_set.structures if s.key in set(keys)]

    def in_bone(value, box, voxels, ids, count):
        pieces = [[v[ids == piece] + b.start for v, b in zip(voxels, box)] for piece in range(1, count + 1)]
        return [n + 1 for n, piece in enumerate(pieces)
                if dense_shell_fraction(ct_hu, piece, spacing_ijk) > max_dense_fraction]

    _drop_pieces(out, values, in_bone)
    return out


#: Structures that lie near the body's midline, and how far (mm, left-right) from it the centre of one of their
#: pieces may lie: the aorta's centre lies within about 30 mm of the midline from the root to the bifurcation (real
#: pieces on LIDC-IDRI-0001 and 0002: -30 to +28 mm); the false aorta pieces IMA/aorta models labelled on those
#: scans, in the liver, the colon or the lateral chest, lay 87-93 mm from it.
NEAR_MIDLINE_MM = {"aorta": 60.0}


def remove_pieces_off_midline(labelmap: np.ndarray, label_set, midline_index: int, axis: int, spacing_ijk,
                              max_offset_mm: Mapping[str, float] = NEAR_MIDLINE_MM) -> np.ndarray:
    """Remove the connected pieces (26-connectivity) of each structure of ``max_offset_mm`` whose centre lies
    more than its distance (mm) from the body's midline.

    ``labelmap``: integer (K, J, I) with the values of ``label_set``; ``midline_index``: the midline's index
    on ``axis`` (the array axis closest to left-right, 0 = k, 1 = j, 2 = i); ``spacing_ijk``: voxel size (i, j, k)
    in mm. Structures not in ``label_set`` are skipped. Returns a new label map; raises InputError for a
    non-integer label map."""
    out = _checked_copy(labelmap)
    step = float(_spacing(spacing_ijk)[2 - axis])  # spacing is (i, j, k), axes (k, j, i)
    limits = {s.value: float(max_offset_mm[s.key]) for s in label_set.structures if s.key in max_offset_mm}

    def far(value, box, voxels, ids, count):
        # each piece's mean index on the axis, from its voxels alone (not a box-sized array of coordinates)
        centres = np.bincount(ids, weights=voxels[axis], minlength=count + 1)[1:] / np.bincount(ids, minlength=count + 1)[1:]
        offsets = np.abs(centres + box[axis].start - midline_index) * step
        return np.flatnonzero(offsets > limits[value]) + 1

    _drop_pieces(out, limits, far)
    return out


#: Vessels whose highest part is an arch, with (gap mm, diameter mm): a piece of one of them lying more than the gap
#: above the highest slice of its pieces at least the diameter wide (median cross-section, as an equivalent
#: diameter), and itself narrower, is a branch of the arch, not the vessel. The aorta's branches (brachiocephalic
#: trunk 10-14 mm, common carotid 6-8 mm, subclavian arteries 8-10 mm) are labelled apart from it (the generator's
#: ``supra_aortic_arteries``); the adult thoracic aorta is at least 18-20 mm across. LIDC-IDRI-0002: the network took
#: the left common carotid or subclavian artery for aorta 14-38 mm above the arch (8.8 mm median width), the aorta's
#: own pieces 19-36 mm wide.
ABOVE_THE_ARCH = {"aorta": (10.0, 16.0)}

#: Radius (mm) of the ball whose morphological opening splits a piece of such a structure at its necks, for
#: :func:`remove_branches_above`: a neck narrower than about twice the radius parts the piece. A part lying
#: wholly above the rest of its piece and reaching more than the gap above it is a branch joined to the arch
#: through its narrow origin, whatever its width. LIDC-IDRI-0002 with the SE + Swin model: 9.6 mL of the
#: left arch branches and the tissue between them, 19 mm across, joined to the arch's top through an 8-9 mm neck.
#: At 4 mm no piece of the real CTs' aortas from either IMA/aorta model is split elsewhere (at 5 mm LIDC-IDRI-0001's
#: arch top parts, harmlessly, since its ascending part reaches below the top of its descending part).
BRANCH_NECK_RADIUS_MM = 4.0

#: In-plane voxel size (mm) up to which :func:`remove_branches_above` subsamples a piece for its opening.
NECK_WORKING_SPACING_MM = 1.5


def remove_branches_above(labelmap: np.ndarray, label_set, spacing_ijk, direction,
                          arches: Mapping[str, tuple[float, float]] = ABOVE_THE_ARCH,
                          neck_radius_mm: float = BRANCH_NECK_RADIUS_MM) -> np.ndarray:
    """Remove the parts of each structure of ``arches`` that are a branch of its arch: separate pieces (26-connectivity)
    narrower than the structure and wholly above it, and parts joined to a piece through a narrow neck above it.

    A piece is removed when its median cross-section on the axial slices (equivalent diameter) is below the
    structure's diameter (mm) and its lowest slice lies more than the gap (mm) above the highest slice of the
    structure's pieces whose median cross-section is at least that wide. Nothing is removed by this rule when no
    piece is that wide. Then each remaining piece is split at its necks by a morphological opening with a ball of
    ``neck_radius_mm``; of its parts, the largest is its body, and a part whose lowest slice lies above the body's
    highest one and which reaches more than the gap above it is a branch: it is removed with the piece's voxels above
    the body's highest slice that join it (its neck). ``labelmap``: integer (K, J, I) with the values of
    ``label_set``; ``spacing_ijk``: voxel size (i, j, k) in mm; ``direction``: the grid's (3, 3) LPS direction
    cosines (column n: index axis i, j, k), for the superior direction. Structures not in ``label_set`` are
    skipped. Returns a new label map; raises InputError for a non-integer label map."""
    out = _checked_copy(labelmap)
    long_axis, superior_up = array_axis_along(direction, 2)
    spacing_kji = _spacing(spacing_ijk)[::-1]
    slice_mm = float(spacing_kji[long_axis])
    cross_mm2 = float(np.prod(np.delete(spacing_kji, long_axis)))
    specs = {s.value: arches[s.key] for s in label_set.structures if s.key in arches}

    def branches(value, box, voxels, ids, count):
        gap_mm, diameter_mm = specs[value]
        height = voxels[long_axis] if superior_up else -voxels[long_axis]  # slices counted upwards
        height = height - height.min()
        per_slice = np.bincount(ids * (int(height.max()) + 1) + height, minlength=(count + 1) * (int(height.max()) + 1))
        per_slice = per_slice.reshape(count + 1, -1)[1:].astype(float)
        widths = np.array([2.0 * math.sqrt(np.median(row[row > 0]) * cross_mm2 / math.pi) for row in per_slice])
        low = np.array([np.flatnonzero(row)[0] for row in per_slice])
        high = np.array([np.flatnonzero(row)[-1] for row in per_slice])
        wide = widths >= diameter_mm
        if not wide.any():
            return []
        top = high[wide].max()
        return np.flatnonzero((low - top) * slice_mm > gap_mm) + 1  # wholly above every wide piece: narrow

    boxes = _boxes(out, specs)
    _drop_pieces(out, specs, branches, boxes)
    # The opening runs on every n-th row and column of a fine slice (a neck is 8 mm across; on LIDC-IDRI-0001's
    # aorta the function takes 0.10 s so, 0.36 s with the opening on the full grid, 0.08 s without the necks);
    # the neck's voxels are then taken on the full grid.
    step = np.ones(3, int)
    for axis in range(3):
        if axis != long_axis:
            step[axis] = max(1, int(NECK_WORKING_SPACING_MM // spacing_kji[axis]))
    ball = _ball(neck_radius_mm, spacing_kji * step)
    for value, box in boxes:  # the boxes before the rule above still hold every remaining piece
        gap_mm = specs[value][0]
        pieces, _ = ndi.label(out[box] == value, _structure(3))
        for index, piece_box in enumerate(ndi.find_objects(pieces), 1):
            piece = pieces[piece_box] == index
            neck = _neck_branches(piece, ball, step, long_axis, superior_up, gap_mm / slice_mm)
            if neck is not None:
                out[box][piece_box][neck] = 0
    return out


def _neck_branches(piece: np.ndarray, ball: np.ndarray, step, long_axis: int, superior_up: bool,
                   gap_slices: float) -> np.ndarray | None:
    """The voxels of one piece (bool, its bounding box) that are branches above its body (see
    :func:`remove_branches_above`), or None. The opening with ``ball`` runs on every ``step``-th voxel."""
    if not superior_up:  # count slices upwards
        piece = np.flip(piece, long_axis)
    sub = tuple(slice(None, None, int(n)) for n in step)
    # outside the box counts as background (border_value 0), so the opening needs no padding
    parts, count = ndi.label(ndi.binary_opening(piece[sub], ball), _structure(3))
    if count < 2:
        return None
    body = int(np.bincount(parts.ravel())[1:].argmax()) + 1
    extents = [box[long_axis] for box in ndi.find_objects(parts)]  # each part's slices, lowest to highest + 1
    top = extents[body - 1].stop - 1
    branches = [n for n, extent in enumerate(extents, 1)
                if n != body and extent.start > top and extent.stop - 1 - top > gap_slices]
    if not branches:
        return None
    above = piece.copy()
    np.moveaxis(above, long_axis, 0)[: top + 1] = False
    above_parts, _ = ndi.label(above, _structure(3))
    joined = np.unique(above_parts[sub][np.isin(parts, branches)])
    drop = np.isin(above_parts, joined[joined > 0])
    return drop if superior_up else np.flip(drop, long_axis)


def _ball(radius_mm: float, spacing_kji) -> np.ndarray:
    """Boolean ball (K, J, I) of ``radius_mm`` on a grid of voxel size ``spacing_kji`` (mm)."""
    half = [int(radius_mm // s) for s in spacing_kji]
    grid = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((g * s / radius_mm) ** 2 for g, s in zip(grid, spacing_kji)) <= 1.0


def _drop_pieces(out: np.ndarray, values: Iterable[int], choose, boxes=None) -> None:
    """In place on the label map ``out`` (K, J, I): for each of ``values``, label its connected pieces
    (26-connectivity) in its bounding box and set to 0 the pieces whose ids ``choose(value, box, voxels, ids,
    count)`` returns. ``voxels``: the pieces' voxels in the box (``np.nonzero``, box coordinates); ``ids``:
    their piece ids (1..count). ``boxes``: the values' ``_boxes`` when already found."""
    for value, box in _boxes(out, values) if boxes is None else boxes:
        pieces, count = ndi.label(out[box] == value, _structure(3))
        voxels = np.nonzero(pieces)
        drop = choose(value, box, voxels, pieces[voxels], count)
        if len(drop):
            out[box][np.isin(pieces, drop)] = 0


# -- body mask ----------------------------------------------------------------------------------------


#: In-plane voxel size (mm) up to which :func:`body_mask_from_ct` subsamples a slice before labelling:
#: the body is a large object, and labelling every second row and column of a 0.7 mm chest CT is 4-6x
#: faster (LIDC-IDRI-0001: 1.1 -> 0.2 s; 0002: 1.4-1.8 -> 0.3 s) for 99 % of voxels the same; the rest
#: lie at the skin and, on LIDC-IDRI-0002, where the back lies on the table, far from any structure.
BODY_WORKING_SPACING_MM = 2.0


def body_mask_from_ct(image: Image, threshold_hu: float = BODY_THRESHOLD_HU) -> np.ndarray:
    """The patient's body: the largest 3D component above ``threshold_hu``, holes filled per slice.

    Filling each axial (k) slice puts the lungs and airways, which are below the threshold but
    enclosed by the chest wall, inside the body; the table and clothes, separate components, stay out.
    Slices finer than :data:`BODY_WORKING_SPACING_MM` are subsampled (every n-th row and column) for the
    labelling and the result is repeated back onto the full grid, so the outline is exact to n voxels.

    Returns a bool array (K, J, I) on the image grid. Raises InputError when no voxel is above the threshold.
    """
    arr = np.asarray(image.array)
    step_j, step_i = (max(1, int(BODY_WORKING_SPACING_MM // float(s))) for s in (image.spacing[1], image.spacing[0]))
    if (step_j, step_i) != (1, 1):
        sub = Image(arr[:, ::step_j, ::step_i], spacing=(image.spacing[0] * step_i, image.spacing[1] * step_j,
                                                         image.spacing[2]), origin=image.origin,
                    direction=image.direction, modality=image.modality)
        coarse = body_mask_from_ct(sub, threshold_hu)
        full = np.repeat(np.repeat(coarse, step_j, axis=1), step_i, axis=2)
        return np.ascontiguousarray(full[:, :arr.shape[1], :arr.shape[2]])
    tissue = arr > threshold_hu
    if not tissue.any():
        raise InputError(f"no voxel of the image is above {threshold_hu:g} HU, so no body can be found",
                         "check that the image is a CT in Hounsfield units")
    body = largest_component(tissue)
    # in-plane connectivity only: every slice is filled on its own
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    background, count = ndi.label(~body, structure=in_plane)
    touching_edge = np.concatenate([
        background[:, 0, :].ravel(), background[:, -1, :].ravel(),
        background[:, :, 0].ravel(), background[:, :, -1].ravel()])
    is_hole = np.ones(count + 1, bool)  # per background region (a look-up table: np.isin is 20x slower here)
    is_hole[touching_edge] = False
    is_hole[0] = False
    body |= is_hole[background]
    return body


# -- presence -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Presence:
    """Whether a structure was found, and why not (or why with a caveat).

    Attributes
    ----------
    present: True when the structure is taken as found.
    volume_ml: volume of the predicted voxels in mL (also when they were judged absent).
    reason: None when found without caveat; otherwise "not found", "outside the field of view ...",
        "below minimum plausible volume ...", or, with present=True, "touches the edge of the field
        of view — may be truncated".
    """

    present: bool
    volume_ml: float
    reason: str | None = None


TRUNCATED_REASON = "touches the edge of the field of view — may be truncated"


def structure_presence(labelmap, label_set, image: Image, min_volume_ml: Mapping[str, float] | float = 0.0,
                       fov_margin_mm: float = 2.0, keys=None) -> dict[str, Presence]:
    """Report, per structure of ``label_set``, whether it is present in a predicted label map.

    The field of view (FOV) is the image grid minus the padding outside the reconstruction circle
    (voxels at or below :data:`FOV_PADDING_HU`). Its *edge zone* is every voxel outside the FOV, every
    FOV voxel face-adjacent to a non-FOV voxel or to the grid's outside (so the first and last slice
    always), and every FOV voxel within ``fov_margin_mm`` (centre to centre) of a non-FOV voxel.

    Rules, in order:

    1. no voxel → absent, "not found";
    2. every voxel in the edge zone → absent, "outside the field of view (found only at its edge)":
       a network's response to a structure just beyond the scan, not the structure;
    3. volume below the structure's minimum → absent, "below minimum plausible volume X mL";
    4. otherwise present; when some voxel lies in the edge zone (e.g. an aorta cut by the top
       slice) the reason says "touches the edge of the field of view — may be truncated".

    Parameters
    ----------
    labelmap: integer array (K, J, I) or an Image on the grid of ``image``.
    label_set: a :class:`CardiacAI.labels.LabelSet`.
    image: the CT the label map was predicted from (HU; gives spacing and the padding).
    min_volume_ml: minimum plausible volume in mL, one for all or per structure key (keys left
        out: 0).
    fov_margin_mm: width of the edge zone beyond the outermost voxel layer, mm.
    keys: judge only these structure keys (default: every structure of the label set).

    Returns structure key → :class:`Presence`, in label-set order.

    Raises InputError when the label map and image grids differ or a parameter is negative.
    """
    array = labelmap.array if isinstance(labelmap, Image) else np.asarray(labelmap)
    if isinstance(labelmap, Image) and not labelmap.same_geometry(image, atol=1e-4):
        raise InputError("the label map and the image are on different grids",
                         "resample the label map onto the image grid first")
    if array.shape != image.array.shape:
        raise InputError(f"label map shape {array.shape} differs from the image's {image.array.shape}",
                         "give the label map predicted on this image's grid")
    if fov_margin_mm < 0:
        raise InputError(f"fov_margin_mm must be >= 0, got {fov_margin_mm}")
    _check_integer(array)
    if array.dtype == bool:
        array = array.view(np.uint8)
    spacing_kji = np.asarray(image.spacing, float)[::-1]
    voxel_ml = image.voxel_volume_ml
    margin_vox = [int(math.ceil(fov_margin_mm / s)) + 1 for s in spacing_kji]
    boxes = label_boxes(array)

    result: dict[str, Presence] = {}
    for structure in label_set.structures:
        if keys is not None and structure.key not in keys:
            continue
        value = int(structure.value)
        minimum = (float(min_volume_ml.get(structure.key, 0.0)) if isinstance(min_volume_ml, Mapping)
                   else float(min_volume_ml))
        if minimum < 0:
            raise InputError(f"minimum volume for '{structure.key}' is negative ({minimum} mL)")
        box = boxes[value - 1] if 0 < value <= len(boxes) else None
        if box is None:
            result[structure.key] = Presence(False, 0.0, "not found")
            continue
        grown = tuple(slice(b.start - m, b.stop + m) for b, m in zip(box, margin_vox))
        src, dst, shape = _clip_box(grown, array.shape)
        outside_fov = np.ones(shape, bool)  # beyond the grid is outside the field of view
        outside_fov[dst] = ~(image.array[src] > FOV_PADDING_HU)
        # the structure's voxels, as indices into the grown crop
        voxels = np.nonzero(array[box] == value)
        count = int(voxels[0].size)
        volume = count * voxel_ml
        at_edge = _count_in_edge_zone(outside_fov, [v + m for v, m in zip(voxels, margin_vox)],
                                      spacing_kji, fov_margin_mm)
        if at_edge == count:
            result[structure.key] = Presence(False, volume, "outside the field of view (found only at its edge)")
        elif volume < minimum:
            result[structure.key] = Presence(
                False, volume, f"below minimum plausible volume {minimum:g} mL (found {volume:.3g} mL)")
        else:
            result[structure.key] = Presence(True, volume, TRUNCATED_REASON if at_edge else None)
    return result


def _count_in_edge_zone(outside_fov: np.ndarray, voxels: list[np.ndarray], spacing_kji: np.ndarray,
                        margin_mm: float) -> int:
    """How many of ``voxels`` (index arrays into the crop) lie in its edge zone (see structure_presence).

    The edge zone (outside the FOV, face-adjacent to it, or within
    ``margin_mm`` of an outside voxel centre, measured as ``distance_transform_edt`` measures), but
    looked up at the structure's own voxels only: no distance map of the whole crop. The voxels
    must lie at least ``ceil(margin_mm / spacing) + 1`` voxels inside the crop along every axis.
    """
    if not outside_fov.any():
        return 0
    flat = outside_fov.reshape(-1)
    index = np.ravel_multi_index(tuple(voxels), outside_fov.shape)
    steps = np.array(outside_fov.strides) // outside_fov.itemsize
    hit = np.zeros(index.shape, bool)
    for offset in _edge_offsets(tuple(float(s) for s in spacing_kji), float(margin_mm)):
        hit |= flat[index + int(np.dot(offset, steps))]
    return int(np.count_nonzero(hit))


def _edge_offsets(spacing_kji: tuple[float, float, float], margin_mm: float) -> list[tuple[int, int, int]]:
    """Voxel offsets (k, j, i) whose outside-FOV voxel puts a voxel in the edge zone: itself, its six
    face neighbours, and every offset within ``margin_mm`` (distance computed as scipy's EDT does)."""
    offsets = {(0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)}
    if margin_mm > 0:
        reach = [int(math.ceil(margin_mm / s)) for s in spacing_kji]
        grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")).reshape(3, -1)
        squared = None
        for axis, step in enumerate(spacing_kji):
            d = grid[axis].astype(np.float64) * step
            d = d * d
            squared = d if squared is None else squared + d
        offsets.update(map(tuple, grid[:, np.sqrt(squared) <= margin_mm].T.tolist()))
    return sorted(offsets)


def _clip_box(box: tuple[slice, ...], shape: tuple[int, ...]):
    """For a box that may reach beyond an array of ``shape``: (source slices in the array,
    destination slices in a box-sized crop, crop shape)."""
    crop_shape = tuple(s.stop - s.start for s in box)
    src = tuple(slice(max(s.start, 0), min(s.stop, n)) for s, n in zip(box, shape))
    dst = tuple(slice(a.start - s.start, a.stop - s.start) for a, s in zip(src, box))
    return src, dst, crop_shape


# -- helpers ------------------------------------------------------------------------------------------


def _check_integer(array: np.ndarray) -> None:
    if array.ndim != 3:
        raise InputError(f"a label map must be 3D (k, j, i), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise InputError(f"a label map must hold integers, got {array.dtype}",
                         "convert it with numpy's astype to an unsigned integer type")
    if array.size and np.issubdtype(array.dtype, np.signedinteger) and array.min() < 0:
        raise InputError("the label map has negative values", "labels must be 0 (background) or positive")


def _checked_copy(labelmap) -> np.ndarray:
    array = labelmap.array if isinstance(labelmap, Image) else np.asarray(labelmap)
    _check_integer(array)
    return array.astype(np.uint8) if array.dtype == bool else array.copy()


def label_boxes(array: np.ndarray, max_label: int = 0) -> list[tuple[slice, ...] | None]:
    """The bounding box of each label value of a label map: ``scipy.ndimage.find_objects(array, max_label)``
    (entry ``value - 1``: a tuple of slices, None where the value is absent), found inside the bounding box
    of the non-zero voxels.

    A chest CT's structures fill a small part of its grid, and finding that box first (a maximum per slice,
    then per row and column of the slices that hold labels) costs a third of ``find_objects`` over the whole
    grid (an IMA/aorta result on LIDC-IDRI-0001's 512 x 512 x 133 grid: 12 against 33 ms). The result is the same.

    array: non-negative integer or bool array (K, J, I); other shapes go to ``find_objects`` as they are.
    Raises what ``find_objects`` raises for an array that is not of an integer type (TypeError).
    """
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.view(np.uint8)
    if a.ndim != 3 or a.size == 0:
        return ndi.find_objects(a, max_label)
    k = np.flatnonzero(a.max(axis=(1, 2)))
    if k.size == 0:
        return [None] * max_label
    held = a[k[0]:k[-1] + 1]
    j = np.flatnonzero(held.max(axis=(0, 2)))
    i = np.flatnonzero(held.max(axis=(0, 1)))
    start = (int(k[0]), int(j[0]), int(i[0]))
    boxes = ndi.find_objects(held[:, j[0]:j[-1] + 1, i[0]:i[-1] + 1], max_label)
    return [None if box is None else tuple(slice(b.start + o, b.stop + o) for b, o in zip(box, start))
            for box in boxes]


def _boxes(array: np.ndarray, values: Iterable[int] | None):
    """(value, bounding box) of each requested value present in the array."""
    boxes = label_boxes(array)
    wanted = range(1, len(boxes) + 1) if values is None else sorted({int(v) for v in values})
    return [(v, boxes[v - 1]) for v in wanted if 0 < v <= len(boxes) and boxes[v - 1] is not None]


def _faces(array: np.ndarray):
    for axis in range(array.ndim):
        yield np.take(array, 0, axis=axis)
        yield np.take(array, -1, axis=axis)


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (1, 2, 3):
        raise InputError(f"connectivity must be 1, 2 or 3, got {connectivity}")
    return ndi.generate_binary_structure(3, connectivity)


def _spacing(spacing_ijk) -> np.ndarray:
    spacing = np.asarray(spacing_ijk, float).ravel()
    if spacing.size != 3 or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"spacing must be 3 positive numbers (i, j, k) in mm, got {spacing_ijk}")
    return spacing
