"""Perivascular regions on analytic tubes: thickness = local vessel diameter, in mm, at anisotropic spacing."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.image import Image
from CardiacAI.labels import get_label_set
from CardiacAI.perivascular import add_perivascular_regions, perivascular_region

SPACING_IJK = (0.6, 0.8, 2.0)  # anisotropic in-plane and through-plane


def tube_along_k(radius_mm, shape_kji=(30, 90, 110), centre_ji=(45.3, 55.2), spacing_ijk=SPACING_IJK):
    """Boolean tube along k; radius a number or a function of k. Returns (mask, radial distance mm)."""
    k, j, i = np.indices(shape_kji, dtype=float)
    rho = np.hypot((i - centre_ji[1]) * spacing_ijk[0], (j - centre_ji[0]) * spacing_ijk[1])
    radius = radius_mm(k) if callable(radius_mm) else np.full(shape_kji, float(radius_mm))
    return rho <= radius, rho


def test_straight_tube_gives_a_ring_one_diameter_thick():
    r = 5.0
    vessel, rho = tube_along_k(r)
    region = perivascular_region(vessel, SPACING_IJK)
    voxel = max(SPACING_IJK[:2])  # the in-plane voxel size bounds the radial error

    assert not (region & vessel).any()
    middle = slice(10, 20)  # away from the tube's cut ends
    ring, radial = region[middle], rho[middle]
    outer_reach = radial[ring].max()
    first_gap = radial[~ring & ~vessel[middle]].min()
    # the ring reaches 2r beyond the wall (3r from the axis) to within one voxel, and is full up to there
    assert 3 * r - voxel <= outer_reach <= 3 * r + voxel
    assert first_gap >= 3 * r - voxel
    assert radial[ring].min() <= r + voxel  # it starts at the wall


def test_tube_across_thick_slices_uses_mm_not_voxels():
    # the same tube running along i: its cross-section spans 0.8-mm rows and 2.0-mm slices
    r = 5.0
    k, j, _ = np.indices((30, 70, 40), dtype=float)
    y = (j - 35.3) * SPACING_IJK[1]
    z = (k - 15.2) * SPACING_IJK[2]
    vessel = np.hypot(y, z) <= r
    region = perivascular_region(vessel, SPACING_IJK)[:, :, 10:30]
    y, z = y[:, :, 10:30], z[:, :, 10:30]
    row = np.abs(z) < SPACING_IJK[2] / 2  # the slice through the axis
    column = np.abs(y) < SPACING_IJK[1] / 2  # the row through the axis
    assert abs(np.abs(y[region & row]).max() - np.sqrt(9 * r * r - z[row].min() ** 2)) <= SPACING_IJK[1]
    assert abs(np.abs(z[region & column]).max() - 3 * r) <= SPACING_IJK[2]


def outer_reach_per_direction(region_slice, rho_slice, angle_slice, bins=36):
    """Furthest region voxel (radial mm) in each of ``bins`` directions around the axis."""
    which = ((angle_slice + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    return np.array([rho_slice[region_slice & (which == b)].max() for b in range(bins)])


def test_tapering_tube_region_thickness_follows_local_diameter():
    shape = (40, 110, 130)
    centre = (55.3, 65.2)
    radius = lambda k: 2.5 + 5.5 * k / (shape[0] - 1)
    vessel, rho = tube_along_k(radius, shape_kji=shape, centre_ji=centre)
    _, j, i = np.indices(shape, dtype=float)
    angle = np.arctan2((j - centre[0]) * SPACING_IJK[1], (i - centre[1]) * SPACING_IJK[0])
    region = perivascular_region(vessel, SPACING_IJK)
    voxel = max(SPACING_IJK[:2])
    typical = []
    for slice_k in range(6, 34, 4):
        r = radius(slice_k)
        reach = np.median(outer_reach_per_direction(region[slice_k], rho[slice_k], angle[slice_k]))
        assert abs(reach - 3 * r) <= voxel, f"slice {slice_k}: reach {reach:.2f} mm, expected {3 * r:.2f}"
        typical.append(reach)
    assert all(a < b for a, b in zip(typical, typical[1:]))  # thicker where the vessel is wider


def test_exclusion_body_clipping_and_bounds():
    vessel, rho = tube_along_k(4.0)
    _, j, i = np.indices(vessel.shape)
    free = perivascular_region(vessel, SPACING_IJK)

    other = (i > 60) & (i < 64)  # another labelled structure crossing the region
    excluded = perivascular_region(vessel, SPACING_IJK, exclude_mask=other)
    assert free[other].any() and not excluded[other].any()
    np.testing.assert_array_equal(excluded, free & ~other)  # nothing else changes

    body = j < 50  # the body ends just past the vessel
    clipped = perivascular_region(vessel, SPACING_IJK, body_mask=body)
    assert not clipped[~body].any()
    np.testing.assert_array_equal(clipped, free & body)

    capped = perivascular_region(vessel, SPACING_IJK, max_distance_mm=3.0)
    assert rho[capped].max() <= 4.0 + 3.0 + max(SPACING_IJK[:2])

    assert not perivascular_region(np.zeros((5, 6, 7), bool), SPACING_IJK).any()
    with pytest.raises(InputError):
        perivascular_region(vessel, SPACING_IJK, body_mask=body[:, :10])
    with pytest.raises(InputError):
        perivascular_region(vessel, (0.6, 0.0, 2.0))


def test_vessel_cut_by_the_edge_of_the_scan_keeps_its_diameter():
    r = 5.0
    vessel, rho = tube_along_k(r)
    region = perivascular_region(vessel, SPACING_IJK)
    top = rho[-1][region[-1]].max()  # last slice: the tube leaves the scan there
    assert abs(top - 3 * r) <= max(SPACING_IJK[:2])


def test_add_perivascular_regions_for_the_ima_aorta_label_set():
    labels = get_label_set("ima-aorta")
    value = {s.key: s.value for s in labels.structures}
    shape = (30, 120, 140)
    _, j, i = np.indices(shape, dtype=float)
    spacing = (0.7, 0.7, 2.5)
    x, y = i * spacing[0], j * spacing[1]
    labelmap = np.zeros(shape, np.uint8)
    labelmap[np.hypot(x - 49.0, y - 50.0) <= 12.0] = value["aorta"]
    labelmap[np.hypot(x - 20.0, y - 14.0) <= 1.5] = value["left_internal_mammary_artery"]
    labelmap[np.hypot(x - 78.0, y - 14.0) <= 1.5] = value["right_internal_mammary_artery"]
    labelmap[np.hypot(x - 49.0, y - 20.0) <= 3.0] = 9  # some other labelled structure nearby
    labelmap[0, 0, 0] = value["periaortic_region"]  # stale region voxel from an earlier run
    image = Image(labelmap, spacing=spacing)

    out = add_perivascular_regions(image, labels)
    assert isinstance(out, Image) and out.same_geometry(image)
    result = out.array
    before_vessels = np.isin(labelmap, [value["aorta"], value["left_internal_mammary_artery"],
                                         value["right_internal_mammary_artery"], 9])
    np.testing.assert_array_equal(result[before_vessels], labelmap[before_vessels])  # never overwritten
    assert result[0, 0, 0] == 0  # stale region cleared: regions follow the vessels

    rho_aorta = np.hypot(x - 49.0, y - 50.0)
    peri_aortic = result == value["periaortic_region"]
    assert rho_aorta[peri_aortic].max() <= 36.0 + 0.7  # 12 mm radius + one 24-mm diameter
    peri_ima = result == value["peri_ima_region"]
    near_left = np.hypot(x - 20.0, y - 14.0)
    assert peri_ima[(near_left > 2.2) & (near_left < 3.8)].all()  # ring around the left IMA
    assert near_left[peri_ima & (x < 49)].max() <= 4.5 + np.hypot(0.7, 0.7)  # within one voxel (diagonal)
    # every region voxel was background before
    assert np.isin(labelmap[peri_aortic | peri_ima], [0, value["periaortic_region"]]).all()

    # a clinician's correction (a thinner aorta) changes the periaortic region accordingly
    thinner = labelmap.copy()
    thinner[(thinner == value["aorta"]) & (rho_aorta > 9.0)] = 0
    redone = add_perivascular_regions(thinner, labels, spacing_ijk=spacing)
    assert rho_aorta[redone == value["periaortic_region"]].max() <= 27.0 + 0.7

    with pytest.raises(InputError):
        add_perivascular_regions(labelmap, labels)  # a plain array needs spacing


def test_scattered_vessel_pieces_give_the_same_region_as_one_box_around_them(monkeypatch):
    """Pieces far apart are computed in boxes of their own (much less work when false positives are
    scattered over the scan); the region must be exactly the one computed in one box around all.
    (One core: the slabs of a box are tested apart.)"""
    from scipy import ndimage as ndi

    from CardiacAI import perivascular
    from CardiacAI.perivascular import _regions

    monkeypatch.setattr(perivascular, "_worker_count", lambda: 1)

    rng = np.random.default_rng(5)
    spacing = (0.7, 0.7, 2.5)
    several_boxes = 0
    for trial in range(6):
        shape = (30, 160, 160)
        labelmap = np.zeros(shape, np.uint8)
        labelmap[rng.random(shape) < 0.000002 * (1 + trial % 3)] = 4
        labelmap = ndi.grey_dilation(labelmap, size=(1 + trial % 2, 5 + trial % 4, 5))
        labelmap[ball(labelmap.shape, (15, 80, 80), 9.0, spacing)] = 4  # and one real vessel-sized piece
        for centre in ((5, 25, 25), (20, 135, 30), (10, 30, 135), (25, 135, 135)):  # pieces far apart
            labelmap[ball(labelmap.shape, centre, 2.0 + trial % 3, spacing)] = 4
        body = np.ones(shape, bool)
        body[:, :20] = False
        for max_distance in (6.0, 40.0):
            split = _regions(labelmap, 4, spacing, body, labelmap != 0, 1.0, max_distance)
            whole = _regions(labelmap, 4, spacing, body, labelmap != 0, 1.0, max_distance, split=False)
            assert len(whole) == 1
            several_boxes += len(split) > 1
            a, b = np.zeros(shape, bool), np.zeros(shape, bool)
            for region in split:
                region.paste(a)
            whole[0].paste(b)
            np.testing.assert_array_equal(a, b)
            assert a.any()
    assert several_boxes >= 4  # the split path was really taken


def test_slabs_on_several_cores_give_the_same_regions_as_one_box(monkeypatch):
    """The region's box is cut into slabs along k, one per core; the label map must be exactly the one
    computed in one box, for an aorta that bends and tapers and an IMA running close beside it."""
    from CardiacAI import perivascular

    spacing = (0.7, 0.7, 2.0)
    shape = (90, 120, 130)
    k, j, i = np.indices(shape, dtype=float)
    axis_j, axis_i = 60 + 15 * np.sin(k / 20.0), 55 + 0.3 * k
    aorta = np.hypot((j - axis_j) * spacing[1], (i - axis_i) * spacing[0]) <= 8.0 + 3.0 * np.cos(k / 15.0)
    ima = np.hypot((j - 20.3) * spacing[1], (i - axis_i - 30.2) * spacing[0]) <= 1.2
    labels = get_label_set("ima-aorta")
    value = {s.key: s.value for s in labels.structures}
    labelmap = np.zeros(shape, np.uint8)
    labelmap[aorta] = value["aorta"]
    labelmap[ima] = value["left_internal_mammary_artery"]
    body = np.ones(shape, bool)
    body[:, :, :6] = False
    slab_counts = []
    real_slabs = perivascular._slabs
    monkeypatch.setattr(perivascular, "_slabs", lambda *a: slab_counts.append(len(real_slabs(*a))) or real_slabs(*a))
    results = {}
    for workers in (1, 3):
        monkeypatch.setattr(perivascular, "_worker_count", lambda: workers)
        results[workers] = add_perivascular_regions(labelmap, labels, body, spacing_ijk=spacing)
    assert max(slab_counts) >= 2  # the slabs were really used
    np.testing.assert_array_equal(results[1], results[3])
    assert (results[3] == value["periaortic_region"]).any() and (results[3] == value["peri_ima_region"]).any()


def ball(shape, centre_kji, radius_mm, spacing_ijk):
    k, j, i = np.indices(shape, dtype=float)
    return (((k - centre_kji[0]) * spacing_ijk[2]) ** 2 + ((j - centre_kji[1]) * spacing_ijk[1]) ** 2
            + ((i - centre_kji[2]) * spacing_ijk[0]) ** 2) <= radius_mm ** 2


def test_rough_vessel_surface_keeps_the_region_thickness():
    """A segmented aorta's surface is rough (a label map resampled from the model grid is a staircase):
    a wall voxel on a one-voxel bump lies in no large inscribed ball, and must not pass its tiny
    thickness to the tissue beside it. Around a predicted aorta the region once shrank to a third."""
    from scipy import ndimage as ndi

    shape = (24, 110, 130)
    vessel, rho = tube_along_k(lambda k: 8.0, shape_kji=shape, centre_ji=(55.3, 65.2))
    smooth = perivascular_region(vessel, SPACING_IJK)
    rng = np.random.default_rng(4)
    shell = ndi.binary_dilation(vessel) & ~vessel
    rough = vessel | (shell & (rng.random(shape) < 0.3))  # one-voxel bumps on 30 % of the wall
    region = perivascular_region(rough, SPACING_IJK)
    assert region.sum() >= 0.9 * smooth.sum()
    middle = slice(8, 16)  # away from the tube's ends: the reach is still 3 radii from the axis
    assert np.median(rho[middle][region[middle]]) >= 0.9 * np.median(rho[middle][smooth[middle]])
