"""Post-processing of label maps: components, holes, anatomy rules, body mask, structure presence."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.image import Image
from CardiacAI.labels import get_label_set
from CardiacAI.postprocess import (
    TRUNCATED_REASON,
    body_mask_from_ct,
    clean_labelmap,
    dense_shell_fraction,
    fill_holes,
    keep_components_near,
    keep_components_overlapping,
    keep_component_in_contact,
    keep_largest_component,
    label_boxes,
    lung_in_front_mm,
    remove_pieces_behind_lung,
    remove_pieces_in_bone,
    remove_pieces_off_midline,
    remove_small_components,
    structure_presence,
)

SPACING_IJK = (0.7, 0.7, 2.5)


def ball(shape, centre_kji, radius_mm, spacing_ijk=SPACING_IJK):
    k, j, i = np.indices(shape, dtype=float)
    s = spacing_ijk
    return (((k - centre_kji[0]) * s[2]) ** 2 + ((j - centre_kji[1]) * s[1]) ** 2
            + ((i - centre_kji[2]) * s[0]) ** 2) <= radius_mm ** 2


def test_label_boxes_are_find_objects_boxes():
    """Every structure's bounding box (found inside the labels' own box first) is scipy's, entry for entry:
    scattered labels, an empty map, bool masks, max_label below and above the largest label."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(7)
    for _ in range(200):
        shape = tuple(int(n) for n in rng.integers(1, 14, 3))
        labels = np.zeros(shape, np.uint8)
        for _ in range(int(rng.integers(0, 7))):
            labels[tuple(int(rng.integers(0, n)) for n in shape)] = rng.integers(1, 8)
        for max_label in (0, 3, 9):
            assert label_boxes(labels, max_label) == ndi.find_objects(labels, max_label)
        assert label_boxes(labels > 0) == ndi.find_objects((labels > 0).view(np.uint8))
        view = labels[:, ::-1]  # not contiguous
        assert label_boxes(view) == ndi.find_objects(view)


def test_keep_largest_component_per_structure():
    labelmap = np.zeros((20, 60, 60), np.uint8)
    labelmap[ball(labelmap.shape, (10, 20, 20), 8)] = 1
    labelmap[ball(labelmap.shape, (10, 45, 45), 3)] = 1  # stray piece of structure 1
    labelmap[ball(labelmap.shape, (10, 45, 15), 2)] = 2
    labelmap[ball(labelmap.shape, (3, 10, 50), 1.5)] = 2  # structure 2 is not processed
    original = labelmap.copy()

    out = keep_largest_component(labelmap, [1])
    np.testing.assert_array_equal(labelmap, original)  # input untouched
    assert out.dtype == labelmap.dtype
    assert np.array_equal(out == 1, ball(labelmap.shape, (10, 20, 20), 8))
    np.testing.assert_array_equal(out == 2, original == 2)

    both = keep_largest_component(labelmap)  # every structure
    assert np.array_equal(both == 2, ball(labelmap.shape, (10, 45, 15), 2))


def test_the_chamber_piece_that_touches_the_heart_is_kept_not_the_largest():
    """A network that calls a liver dome "left ventricular cavity" gives a piece larger than the real
    cavity but touching little else; the real cavity lies inside the myocardium, beside the atrium. The
    piece in the heart must be kept (the largest-component rule kept the liver and lost the cavity on a
    synthetic CTA)."""
    shape = (40, 60, 90)
    labelmap = np.zeros(shape, np.uint8)
    myocardium = ball(shape, (20, 30, 25), 14) & ~ball(shape, (20, 30, 25), 9)
    labelmap[myocardium] = 4
    labelmap[ball(shape, (20, 30, 25), 9)] = 3  # the real cavity, inside the myocardium
    labelmap[ball(shape, (20, 30, 45), 6) & (labelmap == 0)] = 2  # an atrium beside it
    liver = ball(shape, (20, 30, 72), 12)
    labelmap[liver] = 3  # larger, and touching only background
    assert liver.sum() > ball(shape, (20, 30, 25), 9).sum()
    original = labelmap.copy()

    out = keep_component_in_contact(labelmap, [3])
    np.testing.assert_array_equal(labelmap, original)  # input untouched
    assert np.array_equal(out == 3, ball(shape, (20, 30, 25), 9))
    np.testing.assert_array_equal(out[original != 3], original[original != 3])  # other structures untouched
    # the largest-component rule keeps the liver: the difference is the point of the rule
    assert np.array_equal(keep_largest_component(labelmap, [3]) == 3, liver)
    # the pipeline's rules use it for the heart chambers
    cleaned = clean_labelmap(labelmap, get_label_set("whole-heart"), SPACING_IJK)
    assert np.array_equal(cleaned == 3, ball(shape, (20, 30, 25), 9))


def test_a_vessel_piece_beside_the_aorta_loses_to_the_one_that_opens_into_the_heart():
    """The superior vena cava opens into the right atrium. A larger false "SVC" piece lying against the
    descending or abdominal aorta (a synthetic test scan) touches a great vessel, not the heart: contact
    is counted with the chambers and myocardium only."""
    from CardiacAI.postprocess import ANATOMY_RULES

    labels = get_label_set("whole-heart")
    value = {s.key: s.value for s in labels.structures}
    shape = (40, 50, 90)
    labelmap = np.zeros(shape, np.uint8)
    labelmap[ball(shape, (30, 25, 20), 10)] = value["right_atrium"]
    svc = ball(shape, (30, 25, 33), 4) & (labelmap == 0)  # against the atrium
    labelmap[svc] = value["superior_vena_cava"]
    labelmap[5:35, 15:35, 60:80] = value["aorta"]
    false = ball(shape, (20, 25, 55), 6) & (labelmap == 0)  # larger, wrapped against the aorta
    labelmap[false] = value["superior_vena_cava"]
    assert false.sum() > svc.sum()
    assert "aorta" not in ANATOMY_RULES["superior_vena_cava"][1]
    # counted against every structure, the aorta's long border wins; against the heart, the atrium does
    svc_value = value["superior_vena_cava"]
    assert np.array_equal(keep_component_in_contact(labelmap, [svc_value]) == svc_value, false)
    cleaned = clean_labelmap(labelmap, labels, SPACING_IJK)
    assert np.array_equal(cleaned == svc_value, svc)


def test_in_contact_rule_keeps_the_largest_where_no_piece_touches_anything():
    shape = (20, 40, 60)
    labelmap = np.zeros(shape, np.uint8)
    labelmap[ball(shape, (10, 20, 15), 6)] = 7
    labelmap[ball(shape, (10, 20, 45), 4)] = 7
    out = keep_component_in_contact(labelmap)
    assert np.array_equal(out == 7, ball(shape, (10, 20, 15), 6))
    # a piece on the grid's side (its shell partly outside the grid) is handled
    labelmap[0:3, 0:3, 0:3] = 2
    labelmap[0:2, 0:2, 3] = 7
    assert (keep_component_in_contact(labelmap, [7]) == 7).sum() == 4  # the piece touching structure 2


def test_diagonal_thin_vessel_is_one_component_with_26_connectivity():
    labelmap = np.zeros((10, 10, 10), np.uint8)
    for n in range(10):
        labelmap[n, n, n] = 3  # touching only at corners
    assert (keep_largest_component(labelmap) == 3).sum() == 10
    assert (keep_largest_component(labelmap, connectivity=1) == 3).sum() == 1


def test_remove_small_components_keeps_every_large_piece_of_a_thin_vessel():
    labelmap = np.zeros((40, 20, 20), np.uint8)
    labelmap[2:15, 10, 10] = 1  # a thin vessel broken in two: 13 voxels x 1.225 mm³
    labelmap[20:38, 10, 10] = 1
    labelmap[30, 3, 3] = 1  # a one-voxel speck
    labelmap[5, 3, 3] = 2
    voxel_mm3 = 0.7 * 0.7 * 2.5
    out = remove_small_components(labelmap, [1], SPACING_IJK, 10 * voxel_mm3)
    assert out[2:15, 10, 10].all() and out[20:38, 10, 10].all()
    assert out[30, 3, 3] == 0 and out[5, 3, 3] == 2
    # per-value minimum; values not in the mapping are left alone
    out = remove_small_components(labelmap, None, SPACING_IJK, {1: 14 * voxel_mm3})
    assert out[2:15, 10, 10].sum() == 0 and out[20:38, 10, 10].all() and out[5, 3, 3] == 2
    with pytest.raises(InputError):
        remove_small_components(labelmap, [1], SPACING_IJK, -1.0)
    with pytest.raises(InputError):
        remove_small_components(labelmap.astype(float), [1], SPACING_IJK, 1.0)


def test_fill_holes_fills_background_voids_without_eating_neighbours():
    shape = (24, 70, 70)
    labelmap = np.zeros(shape, np.uint8)
    outer = ball(shape, (12, 35, 35), 14)
    labelmap[outer] = 1
    void = ball(shape, (12, 35, 35), 5)
    labelmap[void] = 0  # an enclosed background void in structure 1
    out = fill_holes(labelmap, [1])
    assert (out[void] == 1).all()

    # structure 1 as a shell around structure 2, with a background gap between them
    shell = labelmap.copy()
    shell[ball(shape, (12, 35, 35), 8)] = 0
    shell[ball(shape, (12, 35, 35), 6)] = 2
    out = fill_holes(shell, [1])
    np.testing.assert_array_equal(out == 2, shell == 2)  # the neighbour keeps every voxel
    assert ((out == 0) == (shell == 0)).all()  # the gap next to it is not given to structure 1
    out = fill_holes(shell, [2])  # structure 2 has no hole
    np.testing.assert_array_equal(out, shell)

    # a tunnel open to the outside is not a hole
    tunnel = labelmap.copy()
    tunnel[12, 35, 35:] = 0
    out = fill_holes(tunnel, [1])
    assert (out[12, 35, 35:] == 0).all() and (out[void & (tunnel == 0)] == 0).all()


def test_clean_labelmap_applies_the_anatomy_rules():
    labels = get_label_set("whole-heart")
    v = {s.key: s.value for s in labels.structures}
    shape = (30, 80, 80)
    labelmap = np.zeros(shape, np.uint8)
    labelmap[ball(shape, (15, 25, 25), 10)] = v["left_ventricle_cavity"]
    labelmap[ball(shape, (15, 60, 60), 2)] = v["left_ventricle_cavity"]  # stray blob: removed
    ascending = ball(shape, (15, 25, 60), 8)
    descending = ball(shape, (15, 60, 20), 7)
    labelmap[ascending | descending] = v["aorta"]  # two pieces, arch outside the scan: both kept
    labelmap[ball(shape, (15, 25, 25), 3)] = 0  # a hole in the cavity: filled
    out = clean_labelmap(labelmap, labels, SPACING_IJK)
    assert np.array_equal(out == v["left_ventricle_cavity"], ball(shape, (15, 25, 25), 10))
    assert np.array_equal(out == v["aorta"], ascending | descending)


def test_ima_pieces_too_short_to_be_the_artery_are_removed():
    labels = get_label_set("ima-aorta")
    v = {s.key: s.value for s in labels.structures}
    shape = (40, 40, 40)  # SPACING_IJK voxels
    labelmap = np.zeros(shape, np.uint8)
    labelmap[2:38, 10, 10] = v["left_internal_mammary_artery"]  # a long thin run down the chest wall: kept
    labelmap[5:8, 30:33, 30:33] = v["left_internal_mammary_artery"]  # a short bright blob: removed
    out = clean_labelmap(labelmap, labels, SPACING_IJK)
    expected = np.zeros(shape, bool)
    expected[2:38, 10, 10] = True
    assert np.array_equal(out == v["left_internal_mammary_artery"], expected)
    with pytest.raises(InputError, match="unknown post-processing rule"):
        clean_labelmap(labelmap, labels, SPACING_IJK, rules={"aorta": ("elongated", 10.0)})
    with pytest.raises(InputError, match="unknown post-processing rule"):  # which structures count as contact?
        clean_labelmap(labelmap, labels, SPACING_IJK, rules={"aorta": ("in_contact",)})


def _broken_imas(lima: int) -> tuple[np.ndarray, np.ndarray]:
    """Pieces of left IMA on axial slices (SPACING_IJK: 2.5 mm apart along k, the body's long axis), and which
    of them are one artery under the IMA rule's gap (30 mm along the body, 9 mm across)."""
    labelmap = np.zeros((80, 60, 60), np.uint8)
    labelmap[2:10, 10:12, 10:12] = lima   # 20 mm long, 2 voxels wide
    labelmap[12:20, 10:12, 11:13] = lima  # 20 mm, two slices (5 mm) further down: together a 45 mm run
    labelmap[30:38, 30:32, 30:32] = lima  # 20 mm
    labelmap[46:54, 30:32, 31:33] = lima  # 20 mm, 20 mm further down its course: the same artery, a stretch missed
    labelmap[60:68, 45:47, 30:32] = lima  # 20 mm
    labelmap[60:68, 45:47, 50:52] = lima  # 20 mm beside it, 13 mm across: another short vessel
    expected = np.zeros(labelmap.shape, bool)
    expected[2:10, 10:12, 10:12] = expected[12:20, 10:12, 11:13] = True
    expected[30:38, 30:32, 30:32] = expected[46:54, 30:32, 31:33] = True
    return labelmap, expected


def test_an_ima_broken_along_its_course_counts_as_one_artery():
    """Pieces of an IMA up to 30 mm apart down the chest wall (and 9 mm across) are one artery for the 30 mm
    rule; short pieces side by side are separate short vessels and go."""
    labels = get_label_set("ima-aorta")
    lima = {s.key: s.value for s in labels.structures}["left_internal_mammary_artery"]
    labelmap, expected = _broken_imas(lima)
    out = clean_labelmap(labelmap, labels, SPACING_IJK)
    assert np.array_equal(out == lima, expected)
    # without the gap rule each 20 mm piece is too short
    no_gap = clean_labelmap(labelmap, labels, SPACING_IJK,
                            rules={"left_internal_mammary_artery": ("elongated", 10.0, 30.0)})
    assert not (no_gap == lima).any()
    # a gap of 6 mm every way (the rule until 2026-11-22) keeps only the pieces 5 mm apart
    near = clean_labelmap(labelmap, labels, SPACING_IJK, rules={"left_internal_mammary_artery": ("elongated", 10.0, 30.0, 6.0)})
    assert np.array_equal(near == lima, expected & (np.arange(80) < 30)[:, None, None])


def test_the_gap_follows_the_body_long_axis_on_any_array_axis():
    """The same arteries on a grid whose i axis runs down the body (a sagittal acquisition): with ``long_axis=2``
    the result is the axial one transposed; an unknown axis or a malformed gap is refused."""
    labels = get_label_set("ima-aorta")
    lima = {s.key: s.value for s in labels.structures}["left_internal_mammary_artery"]
    labelmap, expected = _broken_imas(lima)
    spacing_ijk = (SPACING_IJK[2], SPACING_IJK[1], SPACING_IJK[0])  # the 2.5 mm steps now along i
    out = clean_labelmap(np.ascontiguousarray(labelmap.transpose(2, 1, 0)), labels, spacing_ijk, long_axis=2)
    assert np.array_equal(out == lima, expected.transpose(2, 1, 0))
    with pytest.raises(InputError, match="long_axis"):
        clean_labelmap(labelmap, labels, SPACING_IJK, long_axis=3)
    with pytest.raises(InputError, match="along_mm, across_mm"):
        clean_labelmap(labelmap, labels, SPACING_IJK,
                       rules={"left_internal_mammary_artery": ("elongated", 10.0, 30.0, (30.0, 9.0, 9.0))})


def test_pieces_within_the_gap_are_exactly_those_whose_grown_balls_touch():
    """The gap rule's grouping, found from surface-voxel pairs, equals its definition: every piece grown
    by a ball of half the gap (an ellipsoid of half the per-axis gaps), grown pieces that touch
    (26-neighbourhood) being one vessel."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(10, 36, 3))
        mask = rng.random(shape) < rng.uniform(0.002, 0.03)
        if rng.random() < 0.5:  # some pieces with an inside, not only surface
            mask = ndi.binary_dilation(mask)
        spacing_ijk = (float(rng.uniform(0.4, 1.0)), float(rng.uniform(0.4, 1.0)), float(rng.choice([0.6, 1.25, 2.5])))
        gap, extent = float(rng.uniform(1.0, 9.0)), float(rng.uniform(3.0, 15.0))
        if rng.random() < 0.5:  # a gap per axis (k, j, i): pieces grown by an ellipsoid
            gap = tuple(float(g) for g in rng.uniform(1.0, 12.0, 3))
        got = remove_small_components(mask.astype(np.uint8), [1], spacing_ijk, 0.0,
                                      min_extent_mm={1: extent}, gap_mm={1: gap}) == 1
        # the definition, on a grid padded so that no grown piece is cut at the array's side
        d = np.asarray(spacing_ijk)[::-1]
        gaps = np.broadcast_to(np.asarray(gap, float), (3,))
        r = np.ceil(gaps / 2 / d).astype(int)
        grid = np.ogrid[tuple(slice(-n, n + 1) for n in r)]
        half_ball = sum((g * s / (h / 2)) ** 2 for g, s, h in zip(grid, d, gaps)) <= 1.0
        padded = np.pad(mask, [(n + 1, n + 1) for n in r])
        groups, _ = ndi.label(ndi.binary_dilation(padded, half_ball), structure=np.ones((3, 3, 3), bool))
        groups = groups[tuple(slice(n + 1, -(n + 1)) for n in r)] * mask
        expected = np.zeros(shape, bool)
        for g, box in enumerate(ndi.find_objects(groups), start=1):
            if box is not None and max((s.stop - s.start) * v for s, v in zip(box, d)) >= extent:
                expected |= groups == g
        np.testing.assert_array_equal(got, expected)


def _phantom_ct(shape=(30, 96, 96), padding=True):
    """A body ellipse (40 HU) with two lungs (-850 HU), a table below it, air around, padded circle."""
    _, j, i = np.indices(shape, dtype=float)
    hu = np.full(shape, -1000.0)
    body = ((i - 48) / 40) ** 2 + ((j - 44) / 30) ** 2 <= 1
    hu[body] = 40.0
    lungs = (((i - 30) / 12) ** 2 + ((j - 44) / 16) ** 2 <= 1) | (((i - 66) / 12) ** 2 + ((j - 44) / 16) ** 2 <= 1)
    hu[lungs] = -850.0
    table = (j >= 80) & (j <= 83) & (i > 10) & (i < 86)
    hu[table] = 200.0
    if padding:
        hu[((i - 47.5) ** 2 + (j - 47.5) ** 2) > 47.5 ** 2] = -2048.0
    return Image(hu.astype(np.int16), spacing=SPACING_IJK, modality="CT"), body, lungs, table


def test_body_mask_includes_lungs_and_excludes_table_and_air():
    from scipy import ndimage as ndi

    image, body, lungs, table = _phantom_ct()
    mask = body_mask_from_ct(image)
    assert mask.dtype == bool and mask.shape == image.array.shape
    # 0.7 mm slices are labelled at every second row and column: the outline is exact to one voxel
    # (each 2 x 2 block takes the value of its first voxel, which may lie diagonally across the outline)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = True
    assert mask[lungs].all() and mask[ndi.binary_erosion(body, in_plane)].all()
    assert not mask[table].any()
    assert not mask[~ndi.binary_dilation(body, in_plane)].any()
    # at 2 mm nothing is subsampled: the outline is exact
    coarse = Image(image.array, spacing=(2.0, 2.0, 2.5), modality="CT")
    exact = body_mask_from_ct(coarse)
    assert exact[body].all() and not exact[~body].any() and not exact[table].any()
    with pytest.raises(InputError):
        body_mask_from_ct(image.with_array(np.full(image.array.shape, -1000, np.int16)))


def test_structure_presence_reasons():
    image, _, _, _ = _phantom_ct()
    labels = get_label_set("whole-heart")
    v = {s.key: s.value for s in labels.structures}
    shape = image.array.shape
    labelmap = np.zeros(shape, np.uint8)
    labelmap[ball(shape, (15, 44, 48), 12)] = v["left_ventricle_cavity"]  # well inside
    labelmap[ball(shape, (28, 30, 60), 6)] = v["aorta"]  # cut by the top slice
    labelmap[29, 55:60, 40:45] = v["superior_vena_cava"]  # only on the last slice
    labelmap[ball(shape, (15, 60, 30), 2)] = v["right_atrium"]  # a 0.03-mL speck
    labelmap[5, 2:4, 2:4] = v["pulmonary_artery"]  # in the padding outside the reconstruction circle

    presence = structure_presence(labelmap, labels, image, min_volume_ml={"right_atrium": 5.0})
    assert list(presence) == list(labels.keys)
    lv = presence["left_ventricle_cavity"]
    assert lv.present and lv.reason is None
    assert lv.volume_ml == pytest.approx((labelmap == v["left_ventricle_cavity"]).sum() * image.voxel_volume_ml)
    aorta = presence["aorta"]
    assert aorta.present and aorta.reason == TRUNCATED_REASON
    assert not presence["superior_vena_cava"].present
    assert "outside the field of view" in presence["superior_vena_cava"].reason
    assert not presence["pulmonary_artery"].present
    assert "outside the field of view" in presence["pulmonary_artery"].reason
    ra = presence["right_atrium"]
    assert not ra.present and ra.reason.startswith("below minimum plausible volume 5 mL") and ra.volume_ml > 0
    assert presence["left_atrium"] == type(lv)(False, 0.0, "not found")
    # judging some structures only gives the same verdicts for those, and nothing for the rest
    some = structure_presence(labelmap, labels, image, min_volume_ml={"right_atrium": 5.0},
                              keys=["right_atrium", "aorta"])
    assert some == {"aorta": presence["aorta"], "right_atrium": presence["right_atrium"]}

    with pytest.raises(InputError):
        structure_presence(labelmap[:, :10], labels, image)


def test_structure_near_the_reconstruction_circle_edge_is_flagged():
    image, _, _, _ = _phantom_ct()
    labels = get_label_set("whole-heart")
    labelmap = np.zeros(image.array.shape, np.uint8)
    # a blob inside the FOV that reaches the padding circle at the left edge (i ~ 0, j ~ 47)
    labelmap[10:20, 40:55, 0:12] = labels.by_key("right_atrium").value
    labelmap[image.array <= -1500] = 0
    presence = structure_presence(labelmap, labels, image)
    assert presence["right_atrium"].present and presence["right_atrium"].reason == TRUNCATED_REASON


def test_real_ct_body_mask_and_truncated_aorta(lidc1_image):
    image = lidc1_image
    mask = body_mask_from_ct(image)
    nk, nj, ni = image.array.shape
    assert not mask[:, 0, 0].any() and not mask[:, -1, -1].any()  # corners are outside the body
    assert mask[nk // 2, nj // 2, ni // 2]  # mediastinum
    lung = (image.array < -700) & mask
    assert lung.sum() * image.voxel_volume_ml > 1000  # both lungs (litres of air) are inside the body

    # a 30-mm aorta placed along k through the whole scan is cut by the first and last slices
    labels = get_label_set("ima-aorta")
    j, i = np.indices(image.array.shape[1:])
    centre_j, centre_i = nj // 2 - 20, ni // 2 + 20
    disc = ((j - centre_j) * image.spacing[1]) ** 2 + ((i - centre_i) * image.spacing[0]) ** 2 <= 15.0 ** 2
    labelmap = np.zeros(image.array.shape, np.uint8)
    labelmap[:, disc] = labels.by_key("aorta").value
    presence = structure_presence(labelmap, labels, image, min_volume_ml=10.0)
    assert presence["aorta"].present and presence["aorta"].reason == TRUNCATED_REASON
    assert presence["left_internal_mammary_artery"].reason == "not found"


def _edge_zone_by_distance_map(fov, spacing_kji, margin_mm):
    """The edge zone as structure_presence defines it, computed the direct way (distance map of the crop)."""
    from scipy import ndimage as ndi

    if not fov.any():
        return np.ones_like(fov)
    outermost = fov & ~ndi.binary_erosion(fov, structure=ndi.generate_binary_structure(3, 1), border_value=1)
    near = ndi.distance_transform_edt(fov, sampling=spacing_kji) <= margin_mm if margin_mm > 0 else False
    return ~fov | outermost | near


@pytest.mark.parametrize("spacing_ijk, margin_mm", [((0.7, 0.7, 2.5), 2.0), ((1.0, 1.0, 1.0), 2.0),
                                                    ((0.6, 0.8, 1.25), 3.3), ((0.7, 0.7, 2.5), 0.0)])
def test_edge_zone_count_equals_the_distance_map_definition(spacing_ijk, margin_mm):
    """structure_presence counts edge voxels at the structure's voxels only; the count must equal
    the definition (FOV outside, its outer face layer, within margin_mm by distance map)."""
    from CardiacAI.postprocess import _count_in_edge_zone

    rng = np.random.default_rng(7)
    spacing_kji = np.asarray(spacing_ijk, float)[::-1]
    pad = [int(np.ceil(margin_mm / s)) + 1 for s in spacing_kji]
    for _ in range(5):
        shape = (14, 40, 40)
        outside = rng.random(shape) < 0.01  # scattered padding voxels...
        outside[:, :, :6] = True  # ...and a padded border
        outside[:, 20:26, 20:26] |= rng.random((14, 6, 6)) < 0.5
        crop = np.ones([n + 2 * p for n, p in zip(shape, pad)], bool)  # beyond the grid counts as outside
        crop[pad[0]:pad[0] + shape[0], pad[1]:pad[1] + shape[1], pad[2]:pad[2] + shape[2]] = outside
        structure = rng.random(shape) < 0.3
        voxels = [v + p for v, p in zip(np.nonzero(structure), pad)]
        expected = int(np.count_nonzero(_edge_zone_by_distance_map(~crop, spacing_kji, margin_mm)[tuple(voxels)]))
        assert _count_in_edge_zone(crop, voxels, spacing_kji, margin_mm) == expected
        assert 0 < expected < len(voxels[0])  # the case is not trivial


def _along_k(gap):
    return gap if isinstance(gap, float) else (gap[0], gap[1], gap[1])


def test_clean_labelmap_equals_its_three_steps_in_turn():
    """clean_labelmap shares one copy and one bounding-box pass between its steps; the result must be
    what keep_component_in_contact, keep_largest_component, remove_small_components and fill_holes give one
    after the other."""
    from scipy import ndimage as ndi

    from CardiacAI.postprocess import ANATOMY_RULES

    rng = np.random.default_rng(11)
    for task in ("whole-heart", "ima-aorta"):
        labels = get_label_set(task)
        for _ in range(3):
            shape = (24, 50, 50)
            labelmap = np.zeros(shape, np.uint8)
            for s in labels.structures:
                seeds = rng.random(shape) < 0.0008
                blob = ndi.binary_dilation(seeds, iterations=int(rng.integers(1, 4)))
                blob &= ~ndi.binary_erosion(blob, iterations=1) if rng.random() < 0.5 else blob  # hollow ones
                labelmap[blob & (labelmap == 0)] = s.value
            values = {s.key: s.value for s in labels.structures}
            in_contact = {s.value: [values[k] for k in ANATOMY_RULES[s.key][1] if k in values]
                          for s in labels.structures if ANATOMY_RULES[s.key][0] == "in_contact"}
            largest = [s.value for s in labels.structures if ANATOMY_RULES[s.key][0] == "largest"]
            minimum = {s.value: ANATOMY_RULES[s.key][1] for s in labels.structures
                       if ANATOMY_RULES[s.key][0] in ("components", "elongated")}
            near = {s.value: ANATOMY_RULES[s.key] for s in labels.structures if ANATOMY_RULES[s.key][0] == "near"}
            minimum.update({value: rule[2] for value, rule in near.items()})
            extent = {s.value: ANATOMY_RULES[s.key][2] for s in labels.structures
                      if ANATOMY_RULES[s.key][0] == "elongated"}
            # a rule's (along, across) gap, per array axis (k, j, i) with k down the body, as on axial slices
            gap = {s.value: _along_k(ANATOMY_RULES[s.key][3]) for s in labels.structures
                   if ANATOMY_RULES[s.key][0] == "elongated" and len(ANATOMY_RULES[s.key]) == 4}
            fill = [s.value for s in labels.structures if ANATOMY_RULES[s.key][0] != "none"]
            picked = labelmap
            for value, touching in in_contact.items():  # each structure's contacts as the map came in
                kept = keep_component_in_contact(labelmap, [value], touching=touching)
                picked = np.where((labelmap == value) & (kept != value), 0, picked)
            picked = keep_largest_component(picked, largest)
            kept = remove_small_components(picked, list(minimum), SPACING_IJK, minimum, min_extent_mm=extent,
                                           gap_mm=gap)
            for value, rule in near.items():  # near the chambers as the first two steps left them
                kept = keep_components_near(kept, [value], [values[k] for k in rule[1] if k in values],
                                            SPACING_IJK, rule[3], reference=picked)
            expected = fill_holes(kept, fill)
            result = clean_labelmap(labelmap, labels, SPACING_IJK)
            np.testing.assert_array_equal(result, expected)
            assert not np.array_equal(result, labelmap)  # the rules did something


def test_vein_pieces_far_from_the_heart_are_dropped_and_those_near_it_kept():
    """With the whole-heart anatomy rules, a pulmonary vein piece against the left atrium and one broken off 5 mm
    inside the allowed distance are kept; one 5 mm beyond it (in the lung) is not, nor a coronary sinus piece as
    far off (in the liver), while the one against the atrium stays."""
    from CardiacAI.postprocess import VEIN_NEAR_HEART_MM

    labels = get_label_set("whole-heart")
    v = {s.key: s.value for s in labels.structures}
    step = SPACING_IJK[0]  # the pieces lie along i (0.7 mm), in the atrium's middle slice
    radius, vein = 20.0, 4.0  # mm
    shape = (20, int((2 * radius + 2 * VEIN_NEAR_HEART_MM + 60) / step), int((2 * radius + 2 * VEIN_NEAR_HEART_MM + 60) / step))
    centre = (10, int((radius + 10) / step), int((radius + 10) / step))
    atrium = ball(shape, centre, radius)
    labelmap = np.zeros(shape, np.uint8)
    labelmap[atrium] = v["left_atrium"]

    def piece_at(gap_mm):  # a vein ball whose nearest voxel lies about gap_mm beyond the atrium's surface
        return ball(shape, (10, centre[1], centre[2] + round((radius + gap_mm + vein) / step)), vein) & ~atrium

    against, broken, in_lung = piece_at(0.0), piece_at(VEIN_NEAR_HEART_MM - 5), piece_at(VEIN_NEAR_HEART_MM + 5)
    labelmap[against | broken | in_lung] = v["pulmonary_veins"]
    in_liver = ball(shape, (10, centre[1] + round((radius + VEIN_NEAR_HEART_MM + 5 + vein) / step), centre[2]), vein)
    beside = ball(shape, (10, centre[1] - round((radius + vein) / step), centre[2]), vein) & ~atrium
    labelmap[in_liver | beside] = v["coronary_sinus"]
    pieces = (against, broken, in_lung, in_liver, beside)
    assert all(p.sum() > 100 for p in pieces)  # every piece lies inside the grid
    assert sum(p.sum() for p in pieces) == np.logical_or.reduce(pieces).sum()  # and apart from the others
    out = clean_labelmap(labelmap, labels, SPACING_IJK)
    assert np.array_equal(out == v["pulmonary_veins"], against | broken)
    assert np.array_equal(out == v["coronary_sinus"], beside)
    assert (out == v["left_atrium"]).sum() == atrium.sum()


def test_components_near_equal_their_distance_map_definition():
    """A component is kept exactly when its nearest voxel lies within the distance (mm) of a ``near`` voxel,
    as the Euclidean distance map of the ``near`` structures over the whole grid gives it (anisotropic voxels)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    spacing = (0.7, 0.9, 2.5)
    for distance in (1.0, 2.5, 5.0):
        labelmap = np.zeros((20, 60, 60), np.uint8)
        labelmap[ndi.binary_dilation(rng.random(labelmap.shape) < 0.002, iterations=1)] = 2
        labelmap[(rng.random(labelmap.shape) < 0.003) & (labelmap == 0)] = 1
        labelmap[ndi.binary_dilation(rng.random(labelmap.shape) < 0.0005, iterations=1) & (labelmap == 0)] = 5
        out = keep_components_near(labelmap, [1], [2, 5], spacing, distance)
        to_near = ndi.distance_transform_edt(~np.isin(labelmap, [2, 5]), sampling=spacing[::-1])
        components, count = ndi.label(labelmap == 1, structure=np.ones((3, 3, 3)))
        nearest = ndi.minimum(to_near, components, np.arange(1, count + 1))
        expected = np.isin(components, 1 + np.flatnonzero(np.asarray(nearest) <= distance))
        np.testing.assert_array_equal(out == 1, expected)
        assert 0 < expected.sum() < (labelmap == 1).sum()  # some kept, some dropped
        assert np.array_equal(out[labelmap != 1], labelmap[labelmap != 1])  # nothing else touched


def test_components_near_read_the_reference_and_refuse_bad_input():
    labelmap = np.zeros((5, 20, 20), np.uint8)
    labelmap[2, 5, 5] = 1
    reference = labelmap.copy()
    reference[2, 5, 7] = 3  # 2 voxels (1.4 mm) away on the reference only
    assert not keep_components_near(labelmap, [1], [3], SPACING_IJK, 5.0).any()  # no structure 3: nothing kept
    assert keep_components_near(labelmap, [1], [3], SPACING_IJK, 5.0, reference=reference)[2, 5, 5] == 1
    assert not keep_components_near(labelmap, [1], [3], SPACING_IJK, 1.0, reference=reference).any()
    with pytest.raises(InputError, match="non-negative"):
        keep_components_near(labelmap, [1], [3], SPACING_IJK, -1.0)
    with pytest.raises(InputError, match="differs"):
        keep_components_near(labelmap, [1], [3], SPACING_IJK, 5.0, reference=reference[:4])


def test_components_wholly_outside_a_region_are_dropped_and_crossing_ones_kept_whole():
    labels = np.zeros((6, 10, 60), np.uint8)
    labels[2:4, 4:6, 15:35] = 4  # crosses the region's side at i = 30
    labels[2:4, 4:6, 45:55] = 4  # wholly outside (a piece in an arm)
    labels[2:4, 4:6, 5:10] = 1  # another structure, inside
    labels[2:4, 4:6, 50:58] = 1  # ... and outside
    region = (slice(0, 6), slice(0, 10), slice(0, 30))
    out = keep_components_overlapping(labels, region)
    assert (out[:, :, :45] == labels[:, :, :45]).all()  # the crossing vessel keeps its part beyond the side
    assert not out[:, :, 45:].any()
    only_aorta = keep_components_overlapping(labels, region, values=[4])
    assert (only_aorta[labels == 1] == 1).all() and not (only_aorta[:, :, 45:] == 4).any()
    assert (labels[:, :, 45:] > 0).any()  # the input is left as it was


def _chest_with_lung(anterior_first=True):
    """A (K, J, I) block of chest: soft tissue (40 HU) with a lung (-850 HU) from j = 20 to 70 (35 mm at
    0.7 mm) over the left half (i >= 40); air outside the body beyond j = 90. An IMA piece (label 1) lies in
    front of the lung at j = 15, another (label 1) behind it at j = 75, each 30 slices long; an aorta
    (label 4) behind the lung too. With ``anterior_first=False`` the block is flipped on j, as a scan
    whose rows run from posterior to anterior."""
    ct = np.full((40, 100, 80), 40.0, np.float32)
    ct[:, 90:] = -1000.0
    ct[:, 20:70, 40:] = -850.0
    body = np.zeros(ct.shape, bool)
    body[:, :90] = True
    labels = np.zeros(ct.shape, np.uint8)
    labels[5:35, 14:17, 50:53] = 1  # in front of the lung
    labels[5:35, 74:77, 50:53] = 1  # behind 35 mm of it: a pulmonary vessel's place
    labels[5:35, 74:80, 60:66] = 4
    direction = np.eye(3)
    if not anterior_first:
        ct, body, labels = ct[:, ::-1].copy(), body[:, ::-1].copy(), labels[:, ::-1].copy()
        direction = np.diag([1.0, -1.0, 1.0])
    return ct, body, labels, direction


@pytest.mark.parametrize("anterior_first", [True, False])
def test_ima_pieces_with_lung_in_front_are_removed_and_the_rest_kept(anterior_first):
    """An IMA runs in front of the lung: a piece with 35 mm of lung between it and the chest's front is a
    pulmonary vessel (LIDC-IDRI-0002: 29-118 mm) and goes; the one in front stays, as does every other
    structure. The same on a scan whose rows run from back to front."""
    ct, body, labels, direction = _chest_with_lung(anterior_first)
    label_set = get_label_set("ima-aorta")
    out = remove_pieces_behind_lung(labels, label_set, ct, body, SPACING_IJK, direction)
    front = slice(14, 17) if anterior_first else slice(100 - 17, 100 - 14)
    back = slice(74, 77) if anterior_first else slice(100 - 77, 100 - 74)
    assert (out[:, front, 50:53] == labels[:, front, 50:53]).all() and (out[:, front] == 1).sum() == 30 * 9
    assert not (out[:, back, 50:53] == 1).any()
    assert ((out == 4) == (labels == 4)).all()
    assert (labels[5:35, back, 50:53] == 1).all()  # the input is left as it was
    deep, shallow = np.zeros(ct.shape, bool), np.zeros(ct.shape, bool)
    deep[:, back, 50:53] = True
    shallow[:, front, 50:53] = True
    lung_deep = lung_in_front_mm(ct, body, SPACING_IJK, direction, np.nonzero(deep))
    assert lung_deep.shape == (40 * 9,) and np.allclose(lung_deep, 50 * 0.7)  # 50 lung rows in front, 0.7 mm each
    assert lung_in_front_mm(ct, body, SPACING_IJK, direction, np.nonzero(shallow)).max() == 0


def test_real_imas_have_no_lung_in_front(lidc1_image):
    """On LIDC-IDRI-0001 the two real IMAs, tracked slice by slice (benchmarks/ima_real_probe.py), lie in
    front of the lung on every slice: the lung rule keeps them (at most 0.7 mm, one voxel of partial volume,
    against MAX_LUNG_IN_FRONT_MM)."""
    import sys
    from pathlib import Path

    from CardiacAI.postprocess import MAX_LUNG_IN_FRONT_MM

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from ima_real_probe import STARTS, track

    hu = lidc1_image.array
    body = body_mask_from_ct(lidc1_image)
    for side, start in STARTS.items():
        points = track(hu.astype(np.float32), start)
        assert len(points) > 30, side
        voxels = np.array([(k, j, i) for k, (j, i) in points.items()]).T
        values = lung_in_front_mm(hu, body, lidc1_image.spacing, lidc1_image.direction, voxels)
        assert values.max() < 0.2 * MAX_LUNG_IN_FRONT_MM, (side, values.max())


def _sternum_and_arteries():
    """A (K, J, I) block of chest wall at 0.7 x 0.7 x 2.5 mm: fat (-100 HU) with a sternum (marrow 250 HU) from
    i = 30 to 50, j = 10 to 25, and a costal cartilage (120 HU) running from its side at j = 10-16. Three
    contrast-filled (300 HU) 2 mm pieces, 30 slices long: a left IMA in the fat beside the sternum, 2 mm behind the
    cartilage; a right IMA inside the sternum (the sternum's own HU, as a model may label marrow); an aorta
    inside the sternum too, which the rule does not judge."""
    ct = np.full((40, 60, 90), -100.0, np.float32)
    ct[:, 10:25, 30:50] = 250.0
    ct[:, 10:16, 50:80] = 120.0
    labels = np.zeros(ct.shape, np.uint8)
    labels[5:35, 19:22, 58:61] = 1  # beside the sternum, behind the cartilage
    labels[5:35, 16:19, 38:41] = 2  # in the sternum's marrow
    labels[5:35, 20:23, 44:47] = 4
    ct[labels == 1] = 300.0
    ct[labels == 4] = 300.0
    return ct, labels


def test_ima_pieces_inside_bone_are_removed_and_the_rest_kept():
    """An IMA runs in soft tissue behind the costal cartilages: a piece wrapped in the sternum's marrow goes (the
    false right IMA on the non-contrast LIDC-IDRI-0002 had 0.30-0.32 of its shell denser than 150 HU); a
    contrast-filled one in fat beside the sternum stays although it is as bright as bone and has cartilage in
    front; other structures are not judged."""
    ct, labels = _sternum_and_arteries()
    original = labels.copy()
    out = remove_pieces_in_bone(labels, get_label_set("ima-aorta"), ct, SPACING_IJK)
    np.testing.assert_array_equal(labels, original)  # the input is left as it was
    assert not (out == 2).any()
    np.testing.assert_array_equal(out == 1, original == 1)
    np.testing.assert_array_equal(out == 4, original == 4)
    assert dense_shell_fraction(ct, np.nonzero(original == 2), SPACING_IJK) > 0.9
    assert dense_shell_fraction(ct, np.nonzero(original == 1), SPACING_IJK) < 0.05  # cartilage is 120 HU
    assert dense_shell_fraction(ct, (np.array([], int),) * 3, SPACING_IJK) == 0.0
    with pytest.raises(InputError, match="differ in shape"):
        remove_pieces_in_bone(labels, get_label_set("ima-aorta"), ct[:-1], SPACING_IJK)


def test_dense_shell_fraction_equals_its_definition_on_random_objects():
    """dense_shell_fraction reads only a box around the object; it must equal the definition over the whole grid:
    of the voxels more than 1 and at most 3 mm (Euclidean, in mm) from the object, the fraction above 150 HU,
    objects at the grid's edge included."""
    from scipy import ndimage

    from CardiacAI.postprocess import DENSE_ABOVE_HU, DENSE_SHELL_MM

    rng = np.random.default_rng(5)
    spacing_ijk = (0.7, 0.9, 2.5)
    for _ in range(15):
        ct = rng.normal(0.0, 200.0, (14, 40, 36))
        obj = ndimage.binary_dilation(rng.random(ct.shape) < 0.002, iterations=1)
        if not obj.any():
            continue
        distance = ndimage.distance_transform_edt(~obj, sampling=spacing_ijk[::-1])
        shell = (distance > DENSE_SHELL_MM[0]) & (distance <= DENSE_SHELL_MM[1])
        expected = float(np.mean(ct[shell] > DENSE_ABOVE_HU))
        assert dense_shell_fraction(ct, np.nonzero(obj), spacing_ijk) == pytest.approx(expected, abs=1e-12)


def test_real_imas_lie_in_soft_tissue(lidc1_image):
    """On LIDC-IDRI-0001 the two real IMAs, tracked slice by slice (benchmarks/ima_real_probe.py) and drawn 1 mm
    round their track, have shells less than half as dense as MAX_DENSE_SHELL_FRACTION allows: the bone rule keeps
    them (measured 2026-11-22: left 0.006, right 0.08, whose track starts beside the contrast-filled
    brachiocephalic vein and drifts onto a costal cartilage at slice 92; the network's pieces on them 0.02-0.06)."""
    import sys
    from pathlib import Path

    from CardiacAI.postprocess import MAX_DENSE_SHELL_FRACTION

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from ima_real_probe import STARTS, track

    hu = lidc1_image.array.astype(np.float32)
    pixel = lidc1_image.spacing[0]
    for side, start in STARTS.items():
        points = track(hu, start)
        artery = np.zeros(hu.shape, bool)
        for k, (j, i) in points.items():
            jj, ii = np.ogrid[j - 3:j + 4, i - 3:i + 4]
            artery[k, j - 3:j + 4, i - 3:i + 4] = np.hypot(jj - j, ii - i) * pixel <= 1.0
        fraction = dense_shell_fraction(hu, np.nonzero(artery), lidc1_image.spacing)
        assert fraction < 0.5 * MAX_DENSE_SHELL_FRACTION, (side, fraction)


def test_aorta_pieces_far_from_the_midline_are_removed_and_the_rest_kept():
    """The aorta lies within about 30 mm of the body's midline (real pieces on LIDC-IDRI-0001 and 0002: -30 to
    +28 mm); pieces a model labelled in the liver, the colon or the lateral chest lay 87-93 mm from it. With
    the midline at i = 100 and 0.7 mm columns (2.5 mm slices, so a mix-up of the axes' spacing shows): a piece
    centred 28 mm to the side stays, one 70 mm to the other side goes, and an IMA out there is not touched."""
    labels = np.zeros((30, 40, 240), np.uint8)
    labels[5:25, 10:20, 95:106] = 4  # on the midline
    labels[5:10, 10:20, 135:146] = 4  # centre at i = 140: 28 mm left of it
    labels[5:10, 10:20, 195:206] = 4  # centre at i = 200: 70 mm to the other side
    labels[5:25, 2:4, 180:183] = 1
    labels = labels[:, :, ::-1].copy()  # the right piece to the left of the array, as LPS i runs to the left
    out = remove_pieces_off_midline(labels, get_label_set("ima-aorta"), 239 - 100, 2, SPACING_IJK)
    kept = labels.copy()
    kept[5:10, 10:20, 239 - 205:239 - 194] = 0
    np.testing.assert_array_equal(out, kept)
    assert (labels[5:10, 10:20, 239 - 205:239 - 194] == 4).all()  # the input is left as it was


@pytest.mark.parametrize("head_first", [True, False])
def test_a_narrow_aorta_piece_above_the_arch_is_a_branch_and_is_removed(head_first):
    """LIDC-IDRI-0002: the network took an artery of the arch (a left common carotid or subclavian artery, 8.8 mm
    wide) for aorta 14-38 mm above the arch. An aorta piece narrower than 16 mm lying more than 10 mm above the
    aorta is removed; one as narrow but not above the aorta (a gap piece of the descending aorta) and one only
    7.5 mm above it stay; an IMA up there is not touched. A piece as wide as the aorta above it is its arch (where
    the network missed the arch's foot): it stays, and what lies below its top is not above the aorta. Slices of
    2.5 mm, k towards the head (or the feet: the same grid reversed)."""
    from CardiacAI.postprocess import remove_branches_above

    labels = np.zeros((40, 60, 60), np.uint8)
    labels[0:20, 10:40, 10:40] = 4  # the aorta: 30 x 30 voxels of 0.7 mm, 21 mm wide
    labels[2:6, 50:56, 50:56] = 4  # a narrow piece beside it, below its top: stays
    labels[22:25, 20:26, 45:51] = 4  # narrow, 7.5 mm above the aorta's top: stays
    branch = (slice(25, 35), slice(20, 30), slice(20, 30))  # 7 mm wide, 15 mm above: a branch
    labels[branch] = 4
    labels[30:38, 2:4, 2:4] = 1
    direction = np.eye(3) if head_first else np.diag([1.0, 1.0, -1.0])

    def removed(grid):
        flip = (lambda a: a) if head_first else (lambda a: a[::-1].copy())
        out = remove_branches_above(flip(grid), get_label_set("ima-aorta"), SPACING_IJK, direction)
        return flip(out)

    kept = labels.copy()
    kept[branch] = 0
    np.testing.assert_array_equal(removed(labels), kept)
    assert (labels[branch] == 4).all()  # the input is left as it was
    arch = labels.copy()
    arch[36:40, 35:60, 30:60] = 4  # 20 mm wide (median), 40 mm above the aorta's top
    np.testing.assert_array_equal(removed(arch), arch)
    no_wide = np.where(labels == 4, 0, labels)
    no_wide[branch] = 4
    np.testing.assert_array_equal(removed(no_wide), no_wide)  # no aorta to measure against


@pytest.mark.parametrize("head_first", [True, False])
def test_a_wide_part_joined_to_the_arch_through_a_neck_above_it_is_a_branch_and_is_removed(head_first):
    """LIDC-IDRI-0002 with the SE + Swin model: 9.6 mL of the arch's left branches and the tissue between them,
    19 mm across, taken for aorta and joined to the arch's top through an 8-9 mm neck, so one piece with it and as
    wide as the aorta. The part beyond a neck that lies wholly above the aorta's body, and reaches more than 10 mm
    above it, is removed with its neck; the aorta stays. Not removed: the same part joined to the aorta as wide as
    it (the aorta itself, going on up), a part beyond a neck beside the aorta rather than wholly above it, even
    one reaching higher (an ascending aorta joined to the descending through a thin arch; LIDC-IDRI-0001's with a
    5 mm ball), and a part reaching only 10 mm above. Slices of 2.5 mm."""
    from CardiacAI.postprocess import remove_branches_above

    labels = np.zeros((40, 70, 70), np.uint8)
    labels[0:20, 10:40, 10:40] = 4  # the aorta's body: 30 x 30 voxels of 0.7 mm, 21 mm wide, top k = 19
    labels[20:22, 22:28, 22:28] = 4  # a neck 4.2 mm across
    labels[22:34, 11:39, 11:39] = 4  # 19.6 mm wide, reaching 35 mm above the body's top
    labels[30:38, 2:4, 2:4] = 1  # an IMA up there
    direction = np.eye(3) if head_first else np.diag([1.0, 1.0, -1.0])

    def removed(grid):
        flip = (lambda a: a) if head_first else (lambda a: a[::-1].copy())
        return flip(remove_branches_above(flip(grid), get_label_set("ima-aorta"), SPACING_IJK, direction))

    kept = labels.copy()
    kept[20:34][kept[20:34] == 4] = 0
    np.testing.assert_array_equal(removed(labels), kept)
    assert (labels[22:34, 11:39, 11:39] == 4).all()  # the input is left as it was
    going_on = labels.copy()
    going_on[20:22, 10:40, 10:40] = 4  # no neck: the aorta going on up
    np.testing.assert_array_equal(removed(going_on), going_on)
    beside = kept.copy()
    beside[10:12, 24:27, 40:46] = 4  # a neck at mid-height
    beside[4:30, 15:40, 46:70] = 4  # beyond it, 17 mm wide, from below the body's top to 25 mm above it
    np.testing.assert_array_equal(removed(beside), beside)
    low = kept.copy()
    low[20:21, 22:28, 22:28] = 4
    low[21:24, 11:39, 11:39] = 4  # beyond the neck, reaching 10 mm above the body's top: not more
    np.testing.assert_array_equal(removed(low), low)


@pytest.mark.parametrize("anterior_first", [True, False])
def test_the_lung_rule_equals_its_definition_on_random_maps(anterior_first):
    """remove_pieces_behind_lung reads only the columns through a structure's voxels; the result must be what
    the definition gives: over each 26-connected piece, the median of the lung (body voxels below
    LUNG_BELOW_HU) counted over the whole grid from the front of the body to each voxel, against the limit."""
    from scipy import ndimage

    from CardiacAI.postprocess import LUNG_BELOW_HU, MAX_LUNG_IN_FRONT_MM, _structure

    rng = np.random.default_rng(11)
    label_set = get_label_set("ima-aorta")
    direction = np.eye(3) if anterior_first else np.diag([1.0, -1.0, 1.0])
    removed_some = kept_some = False
    for _ in range(20):
        ct = np.where(ndimage.gaussian_filter(rng.normal(size=(12, 60, 30)), 2) > 0, -850.0, 40.0)
        body = np.ones(ct.shape, bool)
        body[:, :3] = False
        labels = (rng.random(ct.shape) < 0.03).astype(np.uint8) * rng.integers(1, 6, ct.shape).astype(np.uint8)
        labels = ndimage.grey_dilation(labels, size=(1, 2, 2))
        out = remove_pieces_behind_lung(labels, label_set, ct, body, SPACING_IJK, direction)
        rows = (ct < LUNG_BELOW_HU) & body  # the front is j = 0, or j = 59 with the flipped direction
        counted = np.cumsum(rows, axis=1) if anterior_first else np.cumsum(rows[:, ::-1], axis=1)[:, ::-1]
        lung = counted * SPACING_IJK[1]
        expected = labels.copy()
        for value in (1, 2):
            pieces, count = ndimage.label(labels == value, _structure(3))
            for piece in range(1, count + 1):
                if np.median(lung[pieces == piece]) > MAX_LUNG_IN_FRONT_MM:
                    expected[pieces == piece] = 0
                    removed_some = True
                else:
                    kept_some = True
        np.testing.assert_array_equal(out, expected)
    assert removed_some and kept_some
