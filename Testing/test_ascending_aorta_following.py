"""Drawing an unenhanced ascending aorta at its width (CardiacAI.lumen_tracking.follow_unenhanced_ascending_aorta),
on phantoms: without contrast the aorta is a soft-tissue disc in the mediastinal fat, touching the pulmonary
trunk with no fat between, rising from the heart into the arch; the "network" labels only a thin core of it, off
its centre, as the IMA/aorta U-Net labels LIDC-IDRI-0002's ascending aorta."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.labels import get_label_set
from CardiacAI.lumen_tracking import AortaFollowSettings, follow_unenhanced_ascending_aorta
from CardiacAI.metrics import dice_coefficient as dice

from aorta_phantoms import distance_mm as phantom_distance_mm, paint as paint_disc

LS = get_label_set("ima-aorta")
AORTA = LS.by_key("aorta").value
LEFT_IMA = LS.by_key("left_internal_mammary_artery").value
SPACING = (0.7, 0.7, 2.5)  # (i, j, k) mm
SHAPE = (40, 120, 100)  # (k, j, i); k towards the head, j towards the back (LPS, identity direction)
LPS = np.eye(3)
FAT_HU, BLOOD_HU = -90.0, 45.0  # unenhanced blood and the aortic wall are one soft tissue
ASCENDING = (35.0, 40.0, 16.0)  # centre (j, i) in voxels and radius in mm: a 32 mm ascending aorta
DESCENDING = (95.0, 65.0, 11.0)  # 22 mm, 42 mm behind it
TRUNK = (35.0, 40.0 + (16.0 + 12.0) / 0.7, 12.0)  # the pulmonary trunk, touching the aorta on its left
HEART_BELOW = 10  # slices 0-9: the root inside the heart, soft tissue all round it
TRUNK_SLICES = range(12, 26)
CORE = range(16, 31)  # the slices on which the network found a core of the ascending aorta
ARCH_FROM = 34  # the network's arch joins the two from this slice up


def distance_mm(cj, ci):
    """Distance in mm of every voxel of a slice from (cj, ci)."""
    return phantom_distance_mm(SHAPE[1:], SPACING, cj, ci)


def paint(hu, k, distance, radius_mm, value=BLOOD_HU):
    """Paint a disc of ``radius_mm`` with a 0.5 mm soft edge (partial volume) onto slice k, over the fat."""
    paint_disc(hu, k, distance, radius_mm, value, FAT_HU)


def phantom(blood_hu=BLOOD_HU, seed=0):
    """(CT in HU, the ascending aorta's true cross-sections (bool), the pulmonary trunk's, the network's labels)."""
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, FAT_HU, np.float32)
    truth = np.zeros(SHAPE, bool)
    trunk = np.zeros(SHAPE, bool)
    labels = np.zeros(SHAPE, np.uint8)
    a, d = distance_mm(*ASCENDING[:2]), distance_mm(*DESCENDING[:2])
    jj, ii = np.mgrid[0:SHAPE[1], 0:SHAPE[2]]
    for k in range(SHAPE[0]):
        paint(hu, k, d, DESCENDING[2], blood_hu)
        labels[k][d <= DESCENDING[2]] = AORTA
        if k < ARCH_FROM:
            paint(hu, k, a, ASCENDING[2], blood_hu)
            truth[k] = a <= ASCENDING[2]
        else:  # the arch: a band as wide as the ascending aorta from it to the descending aorta, drawn whole
            band = _band(jj, ii, ASCENDING, DESCENDING) <= ASCENDING[2] * 0.8
            hu[k][band] = blood_hu
            labels[k][band] = AORTA
        if k < HEART_BELOW:  # the heart round the root
            hu[k][5:75, 5:95] = np.maximum(hu[k][5:75, 5:95], BLOOD_HU)
        if k in TRUNK_SLICES:
            t = distance_mm(*TRUNK[:2])
            paint(hu, k, t, TRUNK[2])
            trunk[k] = t <= TRUNK[2] - 1.0
        if k in CORE:  # a 6 mm core 5 mm in front of the vessel's centre
            labels[k][distance_mm(ASCENDING[0] - 5.0 / SPACING[1], ASCENDING[1]) <= 6.0] = AORTA
    hu += rng.normal(0.0, 10.0, SHAPE).astype(np.float32)
    return hu, truth, trunk, labels


def _band(jj, ii, start, end):
    """Distance (mm) of each voxel from the segment between two centres (j, i)."""
    p = np.stack([jj - start[0], ii - start[1]], -1) * np.array([SPACING[1], SPACING[0]])
    v = np.array([end[0] - start[0], end[1] - start[1]]) * np.array([SPACING[1], SPACING[0]])
    t = np.clip(p @ v / (v @ v), 0.0, 1.0)
    return np.linalg.norm(p - t[..., None] * v, axis=-1)


def test_the_ascending_aorta_is_drawn_whole_from_the_heart_to_the_arch():
    """The thin core is widened to the vessel on each slice, and the track runs on up to the network's arch and
    down to where the heart closes round the root; the pulmonary trunk touching it stays out."""
    hu, truth, trunk, labels = phantom()
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    assert report.followed, report.reason
    assert f"joined the network's aorta at slice {ARCH_FROM}" in report.reason
    assert f"edge gave out at slice {HEART_BELOW - 1}" in report.reason
    assert report.lumen_hu == pytest.approx(BLOOD_HU, abs=15) and report.background_hu < -50
    assert report.slices_added == 0  # every slice held aorta already (the descending aorta)
    for k in range(HEART_BELOW, ARCH_FROM):
        assert dice(aorta[k] & (distance_mm(*ASCENDING[:2]) <= 25.0), truth[k]) >= 0.9, k
    assert not aorta[:HEART_BELOW][truth[:HEART_BELOW]].any()  # the root inside the heart is not guessed
    assert not (aorta & trunk).any()
    assert (aorta | (labels != AORTA)).all()  # the network's voxels all stay


def test_vessels_the_network_took_for_aorta_beside_it_are_removed():
    """Below the arch the aorta crosses a slice twice: a third aorta cross-section on a slice the track drew, the
    pulmonary trunk touching the ascending aorta or a separate vein beside it (LIDC-IDRI-0002: vessels at the left
    and the right hilum), is another vessel and is removed; the descending aorta and the network's
    arch stay whole."""
    hu, truth, trunk, labels = phantom()
    vein = distance_mm(ASCENDING[0], ASCENDING[1] - 26.0 / SPACING[0]) <= 6.0  # 26 mm to the right, 4 mm of fat between
    for k in TRUNK_SLICES:
        labels[k][trunk[k]] = AORTA
        labels[k][vein] = AORTA
        paint(hu, k, distance_mm(ASCENDING[0], ASCENDING[1] - 26.0 / SPACING[0]), 6.0)
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    assert report.followed, report.reason
    assert not (aorta & trunk).any() and not aorta[:, vein].any()
    voxel_ml = np.prod(SPACING) / 1000.0
    assert report.removed_ml == pytest.approx((trunk.sum() + vein.sum() * len(TRUNK_SLICES)) * voxel_ml)
    assert report.as_dict(SPACING[2])["removed_ml"] == round(report.removed_ml, 2)
    descending = distance_mm(*DESCENDING[:2]) <= DESCENDING[2]
    assert aorta[:, descending].all() and (aorta[ARCH_FROM:] | (labels[ARCH_FROM:] != AORTA)).all()
    for k in range(HEART_BELOW, ARCH_FROM):
        assert dice(aorta[k] & (distance_mm(*ASCENDING[:2]) <= 25.0), truth[k]) >= 0.9, k


def test_the_network_drawing_the_aorta_a_little_wider_than_the_circle_is_kept():
    """Where the network draws the aorta 2 mm wider than the circle fitting its edge (partial volume, a thick
    wall), its rim is the vessel's edge, not another vessel: nothing of it is removed."""
    hu, _, _, labels = phantom()
    wide = distance_mm(*ASCENDING[:2]) <= ASCENDING[2] + 2.0
    for k in CORE:
        labels[k][wide] = AORTA
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.followed and report.removed_ml == 0.0
    assert ((out == AORTA) | (labels != AORTA)).all()


def test_the_arch_reaching_back_behind_the_circle_is_kept():
    """Just below the arch the network's ascending aorta reaches back towards the descending aorta (the arch's
    underside, joined to the arch above): that is aorta beside the circle, and it stays."""
    hu, truth, _, labels = phantom()
    jj, ii = np.mgrid[0:SHAPE[1], 0:SHAPE[2]]
    towards_back = (_band(jj, ii, ASCENDING, DESCENDING) <= ASCENDING[2] * 0.8) & (jj <= 60)
    for k in range(CORE.stop, ARCH_FROM):  # the core runs up to the arch, with the underside behind its top
        labels[k][distance_mm(ASCENDING[0] - 5.0 / SPACING[1], ASCENDING[1]) <= 6.0] = AORTA
        if k >= ARCH_FROM - 2:
            labels[k][towards_back] = AORTA
            hu[k][towards_back] = BLOOD_HU
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.followed and f"joined the network's aorta at slice {ARCH_FROM}" in report.reason
    assert report.removed_ml == 0.0
    assert ((out == AORTA) | (labels != AORTA)).all()


def arch_phantom(fat_across=False):
    """The phantom with an arch as the real one turns: above ARCH_FROM its cross-section stretches from 10 mm
    behind the ascending aorta's centre back to the descending aorta, as wide as the ascending aorta, so no circle
    fits it; the network labels only its back part (from 49 mm behind the front of the ascending aorta), as the
    U-Net labels LIDC-IDRI-0002's arch. ``fat_across``: a 5 mm band of fat cuts the arch across in front of the
    network's part. (CT in HU, the arch's and the descending aorta's true cross-section on those slices (bool
    (J, I)), the network's labels.)"""
    hu, _, _, labels = phantom()
    jj, ii = np.mgrid[0:SHAPE[1], 0:SHAPE[2]]
    behind = (ASCENDING[0] + 10.0 / SPACING[1], ASCENDING[1], ASCENDING[2])
    arch = _band(jj, ii, behind, DESCENDING)
    drawn = _band(jj, ii, ASCENDING, DESCENDING) <= ASCENDING[2] * 0.8  # phantom()'s arch, replaced
    descending = distance_mm(*DESCENDING[:2]) <= DESCENDING[2]
    noise = np.random.default_rng(1).normal(0.0, 10.0, (SHAPE[0] - ARCH_FROM,) + SHAPE[1:]).astype(np.float32)
    for k in range(ARCH_FROM, SHAPE[0]):
        hu[k][drawn] = FAT_HU
        labels[k][drawn] = 0
        paint(hu, k, arch, ASCENDING[2])
        if fat_across:
            hu[k][(jj >= 55) & (jj < 62)] = FAT_HU
        hu[k] += noise[k - ARCH_FROM]
        labels[k][(arch <= ASCENDING[2]) & (jj >= 70) | descending] = AORTA
    return hu, (arch <= ASCENDING[2]) | descending, labels


def test_where_the_circles_give_out_at_the_turn_the_ascending_aorta_is_joined_over_the_arch():
    """Where the ascending aorta turns into the arch no circle fits its cross-section and the track stops; the
    network has only the arch's back part (LIDC-IDRI-0002, slices 181-192): the soft tissue between the last circle
    and the network's arch is drawn, so the aorta is one vessel, and nothing beyond the arch's edge is taken."""
    from scipy import ndimage

    hu, arch, labels = arch_phantom()
    other = (ARCH_FROM + 2, int(ASCENDING[0]) + 20, int(ASCENDING[1]))  # another structure's voxel in the arch
    labels[other] = LEFT_IMA
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    assert report.followed, report.reason
    assert f"edge gave out at slice {ARCH_FROM}" in report.reason
    assert f"joined to the network's arch over its top on slices {ARCH_FROM}-{SHAPE[0] - 1}" in report.reason
    for k in range(ARCH_FROM, SHAPE[0]):
        assert dice(aorta[k], arch) >= 0.95, k
        assert not (aorta[k] & ~ndimage.binary_dilation(arch)).any(), k
    assert ndimage.label(aorta, np.ones((3, 3, 3)))[1] == 1
    assert out[other] == LEFT_IMA
    assert ((out == AORTA) | (labels != AORTA)).all()
    added = np.count_nonzero(aorta[ARCH_FROM:] & (labels[ARCH_FROM:] != AORTA)) * np.prod(SPACING) / 1000.0
    assert report.joined_over_arch_ml == pytest.approx(added)
    assert report.as_dict(SPACING[2])["joined_over_arch_ml"] == round(added, 2)


def test_the_arch_is_not_joined_across_fat_or_far_beyond_the_circle():
    """The join draws only soft tissue connecting the two: with fat across the arch nothing is drawn above the
    last circle, and neither when the network's arch lies farther from the circle than ``arch_gap_mm``."""
    hu, _, labels = arch_phantom(fat_across=True)
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.followed and "no soft tissue joins" in report.reason, report.reason
    assert np.array_equal(out[ARCH_FROM:], labels[ARCH_FROM:]) and report.joined_over_arch_ml == 0.0
    hu, _, labels = arch_phantom()
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS,
                                                    settings=AortaFollowSettings(arch_gap_mm=5.0))
    assert "lies more than 5 mm beyond the circle" in report.reason, report.reason
    assert np.array_equal(out[ARCH_FROM:], labels[ARCH_FROM:])


def test_an_enhanced_ascending_aorta_is_left_as_the_network_drew_it():
    """With contrast the network draws the lumen itself (LIDC-IDRI-0001): nothing is changed."""
    hu, _, _, labels = phantom(blood_hu=400.0)
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    assert np.array_equal(out, labels)
    assert not report.followed and "not unenhanced blood" in report.reason


def test_nothing_is_drawn_without_an_ascending_aorta_in_front_of_the_descending_one():
    hu, _, _, labels = phantom()
    labels[:ARCH_FROM][labels[:ARCH_FROM] == AORTA] = 0
    labels[:ARCH_FROM, distance_mm(*DESCENDING[:2]) <= DESCENDING[2]] = AORTA
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    assert np.array_equal(out, labels) and "no ascending aorta" in report.reason
    out, report = follow_unenhanced_ascending_aorta(np.zeros_like(labels), LS, hu, SPACING, LPS)
    assert not out.any() and report.reason == "no aorta to follow"


def test_a_core_on_something_smaller_than_an_aorta_is_left_alone():
    """A "core" on a small soft-tissue node in the fat between the ascending and the descending aorta (a lymph
    node): no circle of an aorta's radius round it lies on enough edge, so there is no reference to start from."""
    hu, _, _, labels = phantom()
    node = distance_mm(ASCENDING[0] + 24.0 / SPACING[1], ASCENDING[1])
    for k in CORE:  # move the core 24 mm behind the vessel's centre, onto the node
        labels[k][distance_mm(ASCENDING[0] - 5.0 / SPACING[1], ASCENDING[1]) <= 6.0] = 0
        labels[k][node <= 6.0] = AORTA
        paint(hu, k, node, 6.0)
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    assert np.array_equal(out, labels) and "no round edge" in report.reason, report.reason


def test_another_structures_voxels_are_never_taken_and_stop_the_track():
    hu, truth, _, labels = phantom()
    labels[12, int(ASCENDING[0]), int(ASCENDING[1])] = LEFT_IMA
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    assert out[12, int(ASCENDING[0]), int(ASCENDING[1])] == LEFT_IMA
    drawn = np.nonzero(((out == AORTA) & truth).any(axis=(1, 2)))[0]
    assert drawn.min() == 13 and "another structure at slice 12" in report.reason


def test_the_grid_may_run_feet_first():
    hu, _, _, labels = phantom()
    reference, _ = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS)
    out, report = follow_unenhanced_ascending_aorta(labels[::-1].copy(), LS, hu[::-1].copy(), SPACING,
                                                    np.diag([1.0, 1.0, -1.0]))
    assert report.followed and np.array_equal(out, reference[::-1])


def test_the_radius_is_bound_to_the_adult_ascending_aortas():
    """A radius range that excludes the vessel's 16 mm finds no circle round the core."""
    hu, _, _, labels = phantom()
    out, report = follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS,
                                                    settings=AortaFollowSettings(ascending_radius_mm=(20.0, 25.0)))
    assert not report.followed and np.array_equal(out, labels)


def test_bad_input_is_refused_with_a_reason():
    hu, _, _, labels = phantom()
    with pytest.raises(InputError, match="differ in shape"):
        follow_unenhanced_ascending_aorta(labels, LS, hu[:-1], SPACING, LPS)
    with pytest.raises(InputError, match="no structure 'vena_cava'"):
        follow_unenhanced_ascending_aorta(labels, LS, hu, SPACING, LPS, key="vena_cava")
