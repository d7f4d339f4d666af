"""Perivascular regions: the tissue within one local vessel diameter of the outer vessel wall.

This is the region in which the perivascular fat attenuation index (FAI) is measured
(Antonopoulos et al., Sci Transl Med 2017, "a radial distance from the outer vessel wall equal to
the diameter of the vessel"; Oikonomou et al., Lancet 2018), used by the IMA/aorta SE+Swin paper
for the peri-IMA and periaortic regions. It is computed from the vessel masks, so it follows every
correction a clinician makes to the vessels.

Method, on boolean masks in (k, j, i) order with anisotropic spacing handled in mm throughout
(``scipy.ndimage.distance_transform_edt`` with ``sampling`` = spacing in (k, j, i) order):

1. The vessel centreline is the ridge of its distance-to-wall map: the vessel voxels from which
   no face neighbour lies deeper by more than half the step between them (the map rises with
   slope 1 towards the axis everywhere else).
2. The inscribed radius at each centreline voxel is its distance to the nearest non-vessel voxel
   centre plus the sub-voxel offset of the true axis (from the neighbours' distances).
3. The local diameter of a vessel voxel is its local thickness (Hildebrand & Rüegsegger, J
   Microsc 1997): the diameter of the largest inscribed ball containing it, kept within
   [``min_diameter_mm``, ``max_distance_mm``]; a voxel less than half as thick as the thickest within
   :data:`SURFACE_NOISE_MM` (at least one voxel per axis) takes that thickness, so that a one-voxel
   bump of a segmented surface does not pass its tiny local thickness to the tissue beside it;
   every voxel outside the vessel takes the diameter of its nearest vessel (wall) voxel
   (nearest-feature transform, ``return_indices=True``).
4. The region is every non-vessel voxel whose distance to the wall (distance to the nearest vessel
   voxel centre minus half a voxel along that direction) is at most that local diameter, inside
   ``body_mask`` and outside ``exclude_mask``.

All of it runs in the vessel's bounding box grown by the largest region thickness, so the cost
depends on the vessel, not on the CT grid; vessel pieces far apart (e.g. scattered false-positive
aorta pieces) are handled in boxes of their own, grouped so that the result is exactly that of one
box around all of them (:func:`_clusters`). Each box is then cut into slabs along k, one per CPU core
(up to :data:`MAX_WORKERS`), computed in threads (scipy's distance transform releases the GIL); each
slab searches the nearest wall within the region's reach beyond its ends, and in-plane covers only its
own stretch of the vessel plus that reach, so the result is again exactly that of one box (with 0.4.0's
aorta on the real CTs: the same voxels, 1.9 -> 1.3 s on LIDC-IDRI-0001 and 4.2 -> 3.0 s on LIDC-IDRI-0002,
2 cores; the in-plane narrowing then 0.81-0.86x the time on LIDC-IDRI-0001). The distance to the wall is kept only for
voxels within reach, never as a float64 map of the whole box. On LIDC-IDRI-0002 (512 x 512 x 261, 11 aorta
pieces) this took the periaortic region from 11 s and 2.2 GB to about 2.5 s and 1 GB (2 busy CPU
cores). Measured on digitised straight tubes along k (radius 1-12 mm,
random sub-voxel axis positions, spacing 0.7 x 0.7 x 2.5 and 0.6 x 0.8 x 2.0 mm): the region
reaches 3 radii from the axis to within -0.6/+0.6 mm, i.e. within one in-plane voxel.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError
from .image import Image
from .postprocess import label_boxes

#: Smallest local diameter used (mm): a vessel segmented one voxel thin still gets a region.
DEFAULT_MIN_DIAMETER_MM = 1.0
#: Largest region thickness (mm): covers the normal adult aorta (ascending diameter up to about
#: 40 mm) while stopping a dilated aorta or a mis-segmented blob from flooding the chest.
DEFAULT_MAX_DISTANCE_MM = 40.0

#: Surface roughness (mm) of a segmented vessel that must not change its local diameter (step 3).
SURFACE_NOISE_MM = 1.5

#: Structure keys of the ima-aorta label set this module reads and writes.
IMA_KEYS = ("left_internal_mammary_artery", "right_internal_mammary_artery")
AORTA_KEY = "aorta"
PERI_IMA_KEY = "peri_ima_region"
PERIAORTIC_KEY = "periaortic_region"


@dataclasses.dataclass
class _Region:
    """A perivascular region inside a box of the full grid, with each voxel's wall distance (mm)."""

    box: tuple[slice, slice, slice]
    mask: np.ndarray
    wall_distance_mm: np.ndarray

    def paste(self, full: np.ndarray) -> None:
        full[self.box] |= self.mask

    def distance_at(self, coords: tuple[np.ndarray, ...]) -> np.ndarray:
        """Wall distance at full-grid coordinates; infinite where the voxel is not in the region."""
        out = np.full(coords[0].shape, np.inf)
        local = [c - b.start for c, b in zip(coords, self.box)]
        inside = np.ones(coords[0].shape, bool)
        for c, n in zip(local, self.mask.shape):
            inside &= (c >= 0) & (c < n)
        idx = tuple(c[inside] for c in local)
        values = np.where(self.mask[idx], self.wall_distance_mm[idx], np.inf)
        out[inside] = values
        return out


def _distance_at(regions: list[_Region], coords: tuple[np.ndarray, ...]) -> np.ndarray:
    """Wall distance (mm) at full-grid coordinates from the nearest of several regions; inf outside all."""
    out = np.full(coords[0].shape, np.inf)
    for region in regions:
        np.minimum(out, region.distance_at(coords), out=out)
    return out


def perivascular_region(vessel_mask: np.ndarray, spacing_ijk, *, body_mask: np.ndarray | None = None,
                        exclude_mask: np.ndarray | None = None,
                        min_diameter_mm: float = DEFAULT_MIN_DIAMETER_MM,
                        max_distance_mm: float = DEFAULT_MAX_DISTANCE_MM) -> np.ndarray:
    """The tissue within one local vessel diameter of the outer wall of a vessel (see module text).

    Parameters
    ----------
    vessel_mask: bool array (K, J, I), the vessel (lumen and wall); may hold several vessels.
    spacing_ijk: voxel size (i, j, k) in mm, as :attr:`CardiacAI.image.Image.spacing`.
    body_mask: bool array (K, J, I); the region is clipped to it (e.g. :func:`CardiacAI.postprocess.body_mask_from_ct`).
    exclude_mask: bool array (K, J, I) of voxels the region must not take (other labelled structures).
    min_diameter_mm: smallest local diameter used, mm.
    max_distance_mm: largest region thickness, mm.

    Returns a bool array (K, J, I) that never includes a vessel voxel; all False for an empty vessel.

    Raises
    ------
    InputError: masks of different shapes or not 3D, spacing not 3 positive numbers, or
        min_diameter_mm / max_distance_mm not positive with min <= max.
    """
    vessel = _mask(vessel_mask, "vessel_mask")
    out = np.zeros(vessel.shape, bool)
    for region in _regions(vessel.view(np.uint8), 1, spacing_ijk, _mask(body_mask, "body_mask", vessel.shape),
                           _mask(exclude_mask, "exclude_mask", vessel.shape), min_diameter_mm, max_distance_mm):
        region.paste(out)
    return out


def add_perivascular_regions(labelmap, label_set=None, body_mask: np.ndarray | None = None, *,
                             spacing_ijk=None, exclude_mask: np.ndarray | None = None,
                             min_diameter_mm: float = DEFAULT_MIN_DIAMETER_MM,
                             max_distance_mm: float = DEFAULT_MAX_DISTANCE_MM):
    """Recompute the peri-IMA and periaortic regions of an ima-aorta label map from its vessels.

    Existing peri_ima_region and periaortic_region voxels are cleared first, so the regions follow
    the current vessel masks. The peri-IMA region grows from each internal mammary artery (each
    with its own diameters), the periaortic region from the aorta; both only into background
    voxels (never a vessel or any other labelled structure, nor ``exclude_mask``), clipped to
    ``body_mask``. A voxel within reach of both the aorta and an IMA goes to the vessel whose wall
    is nearer.

    Parameters
    ----------
    labelmap: :class:`CardiacAI.image.Image` or integer array (K, J, I) with the values of the
        ima-aorta label set.
    label_set: the :class:`CardiacAI.labels.LabelSet` (default ``get_label_set("ima-aorta")``);
        it must have the keys left/right_internal_mammary_artery, aorta, peri_ima_region and
        periaortic_region.
    body_mask: bool array (K, J, I) or None (no clipping).
    spacing_ijk: voxel size (i, j, k) in mm; required for an array, taken from an Image.
    exclude_mask: optional bool array (K, J, I) of further voxels the regions must not take.
    min_diameter_mm, max_distance_mm: as :func:`perivascular_region`.

    Returns a new label map of the same kind (Image or array) and dtype.

    Raises InputError for a missing spacing, a label set without those keys, or mismatched shapes.
    """
    if label_set is None:
        from .labels import get_label_set

        label_set = get_label_set("ima-aorta")
    values = {}
    for key in (*IMA_KEYS, AORTA_KEY, PERI_IMA_KEY, PERIAORTIC_KEY):
        matches = [s.value for s in label_set.structures if s.key == key]
        if not matches:
            raise InputError(f"the label set '{getattr(label_set, 'task', '?')}' has no structure '{key}'",
                             "use the ima-aorta label set")
        values[key] = int(matches[0])

    if isinstance(labelmap, Image):
        array, spacing = labelmap.array, labelmap.spacing
    else:
        array, spacing = np.asarray(labelmap), spacing_ijk
        if spacing is None:
            raise InputError("spacing_ijk is required when the label map is a plain array",
                             "pass spacing_ijk=(i, j, k) in mm, or an Image")
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"the label map must be a 3D integer array, got {array.dtype} {array.shape}")
    body = _mask(body_mask, "body_mask", array.shape)
    extra = _mask(exclude_mask, "exclude_mask", array.shape)

    out = array.copy()
    # one pass over the grid for every label's bounding box; the old regions are cleared inside theirs
    boxes = label_boxes(out, max(values.values()))
    for key in (PERI_IMA_KEY, PERIAORTIC_KEY):
        box = boxes[values[key] - 1]
        if box is not None:
            old = out[box]
            old[old == values[key]] = 0
    vessel_values = [values[AORTA_KEY], *(values[k] for k in IMA_KEYS)]
    found = [boxes[v - 1] for v in vessel_values if v <= len(boxes) and boxes[v - 1] is not None]
    if not found:
        return labelmap.with_array(out) if isinstance(labelmap, Image) else out
    # A region reaches at most max_distance_mm and half a voxel beyond its vessel, and every step that follows
    # (each a pass over its arrays) needs nothing farther: work in the vessels' box grown by that, not on the
    # whole scan (an aorta and two IMAs take a fifth of a 512 x 512 x 133 chest CT's box). The result is the
    # same: the boxes the regions are computed in lie inside it, and it stops only at the scan's edges.
    sampling = _checked_sampling(spacing, min_diameter_mm, max_distance_mm)
    margin = [int(math.ceil((max_distance_mm + float(sampling.max())) / float(s))) + 2 for s in sampling]
    union = tuple(slice(min(b[a].start for b in found), max(b[a].stop for b in found)) for a in range(3))
    crop = _grow(union, margin, out.shape)
    offset = [c.start for c in crop]
    region_labels = out[crop]  # a view: the regions are written into ``out`` through it
    region_body = body[crop] if body is not None else None
    protected = region_labels != 0
    if extra is not None:
        protected |= extra[crop]

    def regions_of(key):
        value = values[key]
        box = boxes[value - 1] if value <= len(boxes) else None
        if box is None:
            return []
        box = tuple(slice(b.start - o, b.stop - o) for b, o in zip(box, offset))
        return _regions(region_labels, value, spacing, region_body, protected, min_diameter_mm, max_distance_mm,
                        vessel_box=box)

    aortic = regions_of(AORTA_KEY)
    ima_regions = [r for key in IMA_KEYS for r in regions_of(key)]
    peri_ima = np.zeros(region_labels.shape, bool)
    for region in ima_regions:
        region.paste(peri_ima)
    periaortic = np.zeros(region_labels.shape, bool)
    for region in aortic:
        region.paste(periaortic)
    both = np.nonzero(peri_ima & periaortic)
    if both[0].size:
        ima_distance = _distance_at(ima_regions, both)
        aortic_nearer = _distance_at(aortic, both) <= ima_distance
        peri_ima[tuple(c[aortic_nearer] for c in both)] = False
        periaortic[tuple(c[~aortic_nearer] for c in both)] = False
    region_labels[peri_ima] = values[PERI_IMA_KEY]
    region_labels[periaortic] = values[PERIAORTIC_KEY]
    return labelmap.with_array(out) if isinstance(labelmap, Image) else out


# -- the computation -------------------------------------------------------------------------------------


def _regions(labels: np.ndarray, value: int, spacing_ijk, body: np.ndarray | None, exclude: np.ndarray | None,
             min_diameter_mm: float, max_distance_mm: float, *, vessel_box: tuple[slice, ...] | None = None,
             split: bool = True) -> list[_Region]:
    """The perivascular region of the vessel ``labels == value``, as regions in disjoint boxes.

    ``labels``: integer array (K, J, I); ``vessel_box``: its bounding box of ``value`` when known.
    With ``split`` (the default) vessel pieces far apart are computed in boxes of their own: the
    distance maps then cover the pieces' neighbourhoods instead of the box around all of them
    (scattered false-positive pieces otherwise make it most of the scan). Pieces are grouped so
    that no step can tell the difference (see :func:`_clusters`): the result is the same as with
    ``split=False``, one box around the whole vessel.
    """
    sampling = _checked_sampling(spacing_ijk, min_diameter_mm, max_distance_mm)
    shape = labels.shape
    if vessel_box is None:
        boxes = ndi.find_objects(labels, max_label=value)
        vessel_box = boxes[value - 1] if len(boxes) >= value else None
        if vessel_box is None:
            return []

    # Diameters on the vessel's own box plus one voxel (within the grid: a vessel cut by the edge
    # of the scan must not look narrow there).
    inner = _grow(vessel_box, [1, 1, 1], shape)
    v_in = labels[inner] == value
    whole = tuple(slice(0, n) for n in v_in.shape)
    pieces = _piece_boxes(v_in) if split else [whole]  # in v_in's frame
    if v_in.all():  # no wall inside the grid at all: the diameter is unknown, take the largest
        radius = np.full(v_in.shape, max_distance_mm / 2.0, np.float32)
    else:
        # A ball of the local thickness reaches at most about three half voxel diagonals beyond its
        # piece's wall: pieces closer than this margin (with room to spare) are computed together.
        half_diagonal = float(np.linalg.norm(sampling)) / 2.0
        ball_margin = [int(math.ceil((4.0 * half_diagonal + float(sampling.min())) / s)) + 2 for s in sampling]
        radius = np.zeros(v_in.shape, np.float32)
        for cluster in _clusters(pieces, ball_margin, v_in.shape):
            box = _grow(cluster, [1, 1, 1], v_in.shape)
            v_box = v_in[box]
            depth = ndi.distance_transform_edt(v_box, sampling=sampling)
            np.maximum(radius[box], _local_thickness_radius(depth, v_box, sampling), out=radius[box])
            del depth
    vessel_diameter = np.clip(2.0 * radius, min_diameter_mm, max_distance_mm)
    del radius
    # A wall voxel on a one-voxel bump of a segmented surface (the staircase of a label map resampled
    # from the model grid, or a network's rough edge) lies in no large inscribed ball, and the tissue
    # beside it would take its tiny diameter: around a predicted aorta on a 0.7 x 0.7 x 2.5 mm scan the
    # region shrank to 540 mL where the true aorta gives 1690 mL. A vessel voxel less than half as thick
    # as the thickest within SURFACE_NOISE_MM (at least one voxel) on each axis takes that thickness; a
    # smooth vessel's diameters, which change far less over that distance, stay as they are.
    size = [2 * max(1, int(round(SURFACE_NOISE_MM / float(s)))) + 1 for s in sampling]
    widest = ndi.maximum_filter(np.where(v_in, vessel_diameter, 0.0).astype(np.float32), size=size)
    vessel_diameter = np.where(v_in & (vessel_diameter < 0.5 * widest), widest, vessel_diameter)
    del widest

    # The region, around each group of pieces, in its box grown by the largest thickness (plus the half voxel).
    reach_mm = float(vessel_diameter[v_in].max()) + float(sampling.max())
    margin = [int(math.ceil(reach_mm / s)) + 1 for s in sampling]
    if split:
        offset_in = np.array([b.start for b in inner])
        in_grid = [tuple(slice(int(a.start + o), int(a.stop + o)) for a, o in zip(piece, offset_in))
                   for piece in pieces]
        outer_boxes = [_grow(c, margin, shape) for c in _clusters(in_grid, margin, shape)]
    else:
        outer_boxes = [_grow(vessel_box, margin, shape)]
    # Each box in slabs along k on the CPU's cores: scipy's distance transform and numpy release the GIL.
    workers = _worker_count()
    jobs = [(outer, core) for outer in outer_boxes for core in _slabs(outer, margin[0], workers)]

    def region_of(job):
        return _region_in_box(labels, value, *job, inner, vessel_diameter, reach_mm, sampling, body, exclude, margin)

    if len(jobs) == 1:
        found = [region_of(jobs[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(jobs), workers)) as pool:
            found = list(pool.map(region_of, jobs))
    return [region for region in found if region is not None]


def _checked_sampling(spacing_ijk, min_diameter_mm: float, max_distance_mm: float) -> np.ndarray:
    """The voxel size in (k, j, i) order, mm, from ``spacing_ijk`` (i, j, k); raises InputError for a spacing
    that is not 3 positive finite numbers or for diameters not 0 < min_diameter_mm <= max_distance_mm (finite)."""
    spacing = np.asarray(spacing_ijk, float).ravel()
    if spacing.size != 3 or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"spacing must be 3 positive numbers (i, j, k) in mm, got {spacing_ijk}")
    if not (0 < min_diameter_mm <= max_distance_mm and math.isfinite(max_distance_mm)):
        raise InputError(f"need 0 < min_diameter_mm <= max_distance_mm (finite), got {min_diameter_mm} "
                         f"and {max_distance_mm}")
    return spacing[::-1]


def _worker_count() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


#: Threads for the region's distance transforms: each slab costs two margins of extra slices.
MAX_WORKERS = 4


def _slabs(outer: tuple[slice, ...], margin_k: int, count: int) -> list[tuple[slice, ...]]:
    """``outer`` cut along k into at most ``count`` slabs, each at least three ``margin_k`` thick."""
    extent = outer[0].stop - outer[0].start
    count = max(1, min(count, extent // max(1, 3 * margin_k)))
    edges = np.linspace(outer[0].start, outer[0].stop, count + 1).round().astype(int)
    return [(slice(int(a), int(b)), *outer[1:]) for a, b in zip(edges[:-1], edges[1:])]


def _region_in_box(labels, value, outer, core, inner, vessel_diameter, reach_mm, sampling, body, exclude,
                   margin) -> _Region | None:
    """The region inside ``core`` (a slab of ``outer``): every voxel within its nearest wall voxel's
    local diameter. The nearest wall voxel is searched in ``core`` grown by ``margin`` (voxels, (k, j, i))
    within ``outer``: one within reach of a voxel of ``core`` lies there."""
    context = tuple(slice(max(c.start - m, o.start), min(c.stop + m, o.stop)) for c, o, m in zip(core, outer, margin))
    v_out = labels[context] == value
    # In-plane, only the vessel's own extent within the context plus the margin matters: a voxel farther than the
    # margin from every vessel voxel of the context is out of reach, and it holds every vessel voxel. Where the
    # vessel is narrower than the box around all of it (the descending aorta below the arch), the distance
    # transform then covers fewer voxels, for the same result. Context and core stay equal in-plane.
    found = ndi.find_objects(v_out.view(np.uint8))
    if not found or found[0] is None:
        return None
    plane = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(found[0][1:], margin[1:], v_out.shape[1:]))
    v_out = v_out[:, plane[0], plane[1]]
    core = (core[0], *(slice(c.start + p.start, c.start + p.stop) for c, p in zip(core[1:], plane)))
    context = (context[0], *core[1:])
    feet_map = ndi.distance_transform_edt(~v_out, sampling=sampling, return_distances=False, return_indices=True)
    # distance_transform_edt's own distance formula, a few slices at a time, kept only for the
    # candidates (within reach) of the core: a float64 map of the whole box is not needed.
    chunk = max(1, 2_000_000 // max(1, v_out.shape[1] * v_out.shape[2]))
    first = core[0].start - context[0].start  # the core's slices in the context's frame
    stop = first + core[0].stop - core[0].start
    point_parts, distance_parts = [], []
    for k0 in range(first, stop, chunk):
        k1 = min(k0 + chunk, stop)
        grid = np.ogrid[k0:k1, 0:v_out.shape[1], 0:v_out.shape[2]]
        squared = None
        for axis in range(3):
            d = (feet_map[axis, k0:k1] - grid[axis].astype(np.int32)).astype(np.float64)
            d *= sampling[axis]
            np.multiply(d, d, d)
            squared = d if squared is None else np.add(squared, d, out=squared)
        distance = np.sqrt(squared)
        candidate = ~v_out[k0:k1] & (distance <= reach_mm)
        if body is not None:
            candidate &= body[context][k0:k1]
        if exclude is not None:
            candidate &= ~exclude[context][k0:k1]
        points = np.nonzero(candidate)
        distance_parts.append(distance[points])
        point_parts.append((points[0] + k0, points[1], points[2]))
        del distance, squared, candidate
    points = tuple(np.concatenate([p[a] for p in point_parts]) for a in range(3))
    wall_distance = np.concatenate(distance_parts)
    if wall_distance.size == 0:
        return None
    feet = feet_map[(slice(None), *points)]
    del feet_map
    offset = np.array([o.start - i.start for o, i in zip(context, inner)])[:, None]
    local_diameter = vessel_diameter[tuple(feet + offset)]
    # the half-voxel correction (at most half the largest spacing) only matters near the boundary
    band = (wall_distance > local_diameter) & (wall_distance - float(sampling.max()) / 2.0 <= local_diameter)
    wall_distance[band] -= _half_voxel_towards(np.stack([p[band] for p in points]), feet[:, band], sampling)
    keep = wall_distance <= local_diameter
    if not keep.any():
        return None
    # in the core's frame: context and core differ only in where they start and stop along k
    shape = tuple(c.stop - c.start for c in core)
    mask = np.zeros(shape, bool)
    kept = (points[0][keep] - first, points[1][keep], points[2][keep])
    mask[kept] = True
    wall = np.full(shape, np.inf, np.float32)
    wall[kept] = wall_distance[keep]
    return _Region(core, mask, wall)


def _piece_boxes(mask: np.ndarray) -> list[tuple[slice, ...]]:
    """Bounding boxes of the 26-connected pieces of a bool mask."""
    pieces, count = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    return [b for b in ndi.find_objects(pieces) if b is not None]


#: Above this many pieces, grouping them costs more than it saves: one box for all.
MAX_PIECES_TO_GROUP = 2000


def _clusters(boxes: list[tuple[slice, ...]], margin: list[int], shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """Group boxes whose ``margin``-grown boxes (within ``shape``) overlap, until no two groups' do.

    Returns the bounding box of each group. Two groups then lie more than ``margin`` voxels apart
    along some axis: a voxel within ``margin`` of one group is farther than ``margin`` from every
    other, so a distance map computed per group agrees with one over all of them wherever a
    distance up to ``margin`` matters.
    """
    if not boxes:
        return []
    lo = np.array([[b.start for b in box] for box in boxes])
    hi = np.array([[b.stop for b in box] for box in boxes])
    if len(boxes) > MAX_PIECES_TO_GROUP:
        return [tuple(slice(int(a), int(b)) for a, b in zip(lo.min(axis=0), hi.max(axis=0)))]
    from scipy.sparse.csgraph import connected_components

    m = np.asarray(margin)
    limit = np.asarray(shape)
    while True:
        glo = np.maximum(lo - m, 0)
        ghi = np.minimum(hi + m, limit)
        overlap = np.all((glo[:, None, :] < ghi[None, :, :]) & (glo[None, :, :] < ghi[:, None, :]), axis=2)
        count, group = connected_components(overlap, directed=False)
        if count == len(lo):
            break
        lo = np.array([lo[group == g].min(axis=0) for g in range(count)])
        hi = np.array([hi[group == g].max(axis=0) for g in range(count)])
    return [tuple(slice(int(a), int(b)) for a, b in zip(l, h)) for l, h in zip(lo, hi)]


def _local_thickness_radius(depth: np.ndarray, vessel: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Per vessel voxel, the radius (mm) of the largest inscribed ball that contains it.

    This is local thickness / 2 (Hildebrand & Rüegsegger, J Microsc 1997). Ball centres are the
    ridge voxels of ``depth`` (the distance map in mm, :func:`_distance_ridge`), moved to the
    sub-voxel position of the true axis (:func:`_ridge_offset_mm`), with radius ``depth`` plus that
    move; a ball reaches half the finest voxel further, for the noise of the distance map. Balls
    are painted largest first, so each voxel keeps the largest ball that reaches it; a voxel no
    ball reaches keeps its own depth. Returns float32 (mm), 0 outside the vessel.
    """
    centres = np.nonzero(_distance_ridge(depth, vessel, sampling))
    offsets = _ridge_offset_mm(depth, centres, sampling)  # (3, N) mm, towards the true axis
    radii = depth[centres] + np.linalg.norm(offsets, axis=0)
    noise = float(np.min(sampling)) / 2.0
    order = np.argsort(-radii, kind="stable")
    radius = np.zeros(depth.shape, np.float32)
    # Every ball's centre, reach and index box at once (the loop below only paints).
    voxels = np.stack(centres) if centres[0].size else np.zeros((3, 0), np.intp)
    centre_mm = voxels * sampling[:, None] + offsets
    reach = radii + noise
    lo = np.maximum(np.floor((centre_mm - reach) / sampling[:, None]).astype(int), 0)
    hi = np.minimum(np.ceil((centre_mm + reach) / sampling[:, None]).astype(int) + 1, np.array(depth.shape)[:, None])
    usable = np.all(hi > lo, axis=0)
    voxel_list, lo_list, hi_list = voxels.T.tolist(), lo.T.tolist(), hi.T.tolist()
    for index in order.tolist():
        k0, j0, i0 = voxel_list[index]
        if radii[index] < 0.5 * float(radius[k0, j0, i0]):
            continue  # a small ball inside a much larger one (wall-side ridge voxel): adds nothing useful
        if not usable[index]:
            continue
        (ka, ja, ia), (kb, jb, ib) = lo_list[index], hi_list[index]
        ck, cj, ci = centre_mm[:, index]
        k = np.arange(ka, kb) * sampling[0] - ck
        j = np.arange(ja, jb) * sampling[1] - cj
        i = np.arange(ia, ib) * sampling[2] - ci
        r = float(reach[index])
        inside = (k[:, None, None] ** 2 + j[None, :, None] ** 2 + i[None, None, :] ** 2) <= r * r
        target = radius[ka:kb, ja:jb, ia:ib]
        target[inside & vessel[ka:kb, ja:jb, ia:ib] & (target == 0)] = radii[index]
    return np.maximum(radius, depth.astype(np.float32) * vessel)


def _ridge_offset_mm(depth: np.ndarray, centres: tuple[np.ndarray, ...], sampling: np.ndarray) -> np.ndarray:
    """Where the true ridge (vessel axis) lies relative to each centre voxel: (3, N) mm in (k, j, i).

    Across a ridge the depth falls with slope 1 on both sides, so along an axis a that crosses it
    (both neighbours lower by about a step: 2 depth(c) - depth(c + e_a) - depth(c - e_a) >= step)
    the ridge sits at (depth(c + e_a) - depth(c - e_a)) / 2 from c, at most half a voxel. Along the
    vessel (no such drop) the offset is 0, so a taper is not mistaken for an offset. Without this a
    vessel looks too narrow by up to half a voxel diagonal, and by up to half a slice when it runs
    across thick slices.
    """
    shape = np.array(depth.shape)
    offsets = np.zeros((3, centres[0].size), float)
    centre_depth = depth[centres]
    for axis, step in enumerate(sampling):
        plus = [c.copy() for c in centres]
        minus = [c.copy() for c in centres]
        plus[axis] += 1
        minus[axis] -= 1
        valid = (plus[axis] < shape[axis]) & (minus[axis] >= 0)
        up = np.full(centre_depth.shape, np.nan)
        down = np.full(centre_depth.shape, np.nan)
        up[valid] = depth[tuple(p[valid] for p in plus)]
        down[valid] = depth[tuple(m[valid] for m in minus)]
        with np.errstate(invalid="ignore"):
            crossing = valid & (2.0 * centre_depth - up - down >= step)
        offsets[axis, crossing] = np.clip((up[crossing] - down[crossing]) / 2.0, -step / 2.0, step / 2.0)
    return offsets


def _half_voxel_towards(points: np.ndarray, feet: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Distance (mm) from a voxel centre to its voxel's face along the direction points -> feet.

    points, feet: (3, N) index arrays; sampling: spacing (k, j, i). This is the half voxel between
    a voxel centre and the wall it faces, for anisotropic voxels and oblique directions.
    """
    vector = (feet - points) * sampling[:, None]
    norm = np.linalg.norm(vector, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        direction = np.abs(vector) / norm
        to_face = np.where(direction > 1e-9, (sampling[:, None] / 2.0) / direction, np.inf)
    half = to_face.min(axis=0)
    return np.where(np.isfinite(half), half, 0.0)


#: A vessel voxel is on the centreline when no face neighbour's distance to the wall exceeds its
#: own by more than this fraction of the step between them: the distance map rises with slope 1
#: towards the axis everywhere else, and with the taper (well below 0.5) along the axis.
RIDGE_MAX_SLOPE = 0.5


def _distance_ridge(depth: np.ndarray, vessel: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """Centreline voxels: the ridge of the distance-to-wall map ``depth`` (mm) inside ``vessel``.

    Used instead of a topological skeleton because it works in mm (anisotropic voxels give no
    spurious medial surfaces) and never comes out empty (the deepest voxel always qualifies;
    skimage's 3D thinning can return nothing for some solid shapes, scikit-image issue #3757).
    """
    steepest = np.zeros(depth.shape, np.float32)
    for axis, step in enumerate(sampling):
        if depth.shape[axis] < 2:
            continue
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        rise = (depth[tuple(upper)] - depth[tuple(lower)]) / step
        np.maximum(steepest[tuple(lower)], rise, out=steepest[tuple(lower)])
        np.maximum(steepest[tuple(upper)], -rise, out=steepest[tuple(upper)])
    return vessel & (steepest <= RIDGE_MAX_SLOPE)


def _grow(box: tuple[slice, ...], margin: list[int], shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, shape))


def _mask(mask, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"{name} must be a 3D (k, j, i) array, got shape {mask.shape}")
    if shape is not None and mask.shape != shape:
        raise InputError(f"{name} has shape {mask.shape} but the vessel mask has {shape}",
                         "give masks on the same grid")
    return mask.astype(bool, copy=False)
