"""Widening a contrast-enhanced aorta drawn as a core inside its lumen (CardiacAI.lumen_tracking.
draw_enhanced_aorta_lumen), on phantoms: bright round ascending and descending aortas in fat, labelled by the
"network" as an off-centre core of each, as the whole-heart model labels LIDC-IDRI-0001's aorta (on its
descending aorta a median 71 % of the lumen, 11 % on its lowest slices)."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.labels import get_label_set
from CardiacAI.lumen_tracking import AortaFollowSettings, draw_enhanced_aorta_lumen
from CardiacAI.metrics import dice_coefficient as dice

from aorta_phantoms import distance_mm as phantom_distance_mm, paint as paint_disc

LS = get_label_set("whole-heart")
AORTA = LS.by_key("aorta").value
LEFT_ATRIUM = LS.by_key("left_atrium").value
SPACING = (0.7, 0.7, 2.5)  # (i, j, k) mm, as LIDC-IDRI-0001
SHAPE = (16, 112, 112)  # (k, j, i); k towards the head, j towards the back (LPS, identity direction)
LPS = np.eye(3)
FAT_HU, LUMEN_HU = -90.0, 400.0
ASCENDING = (32.0, 40.0, 14.0)  # centre (j, i) in voxels, radius in mm
DESCENDING = (80.0, 62.0, 10.0)


def distance(cj, ci):
    return phantom_distance_mm(SHAPE[1:], SPACING, cj, ci)


def phantom(lumen_hu=LUMEN_HU, seed=0):
    """(CT in HU, the aorta's true lumen (bool), the network's label map: a core 6 mm narrower than each lumen,
    3 mm off its centre)."""
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, FAT_HU, np.float32)
    truth = np.zeros(SHAPE, bool)
    labels = np.zeros(SHAPE, np.uint8)
    for k in range(SHAPE[0]):
        for cj, ci, radius in (ASCENDING, DESCENDING):
            d = distance(cj, ci)
            paint_disc(hu, k, d, radius, lumen_hu, FAT_HU)
            truth[k] |= d <= radius
            labels[k][distance(cj + 3.0 / SPACING[1], ci) <= radius - 6.0] = AORTA
    hu += rng.normal(0.0, 10.0, SHAPE).astype(np.float32)
    return hu, truth, labels


def test_a_core_inside_the_lumen_is_widened_to_the_lumen_at_half_maximum():
    hu, truth, labels = phantom()
    out, report = draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    for k in range(SHAPE[0]):
        assert dice(aorta[k], truth[k]) >= 0.95, (k, dice(aorta[k], truth[k]))
    assert np.all(aorta[labels == AORTA])  # the network's own voxels stay
    assert np.array_equal(out[~aorta], labels[~aorta])  # only background became aorta
    added = np.count_nonzero(aorta) - np.count_nonzero(labels == AORTA)
    assert report.widened_ml == pytest.approx(added * np.prod(SPACING) / 1000.0)
    assert report.followed and "32 of 32 cross-sections widened" in report.reason
    assert report.lumen_hu == pytest.approx(LUMEN_HU, abs=30) and report.background_hu < -50
    assert report.level_hu == pytest.approx(0.5 * (report.lumen_hu + report.background_hu))
    assert report.as_dict(SPACING[2])["widened_ml"] == round(report.widened_ml, 2)


def test_a_bright_chamber_touching_the_aorta_is_not_taken_for_it():
    """An unlabelled enhanced chamber (a right atrium the network missed) against the ascending aorta, with no fat
    between them over a 20 mm contact: none of it becomes aorta, and the aorta is not drawn smaller than the
    network drew it."""
    hu, truth, labels = phantom()
    cj, ci, radius = ASCENDING
    chamber = distance(cj, ci + 33.0 / SPACING[0]) <= 25.0  # 33 mm from the aorta's centre, 25 mm across
    for k in range(SHAPE[0]):
        hu[k][chamber & ~truth[k]] = 350.0
    out, _ = draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    near = [distance(cj, ci) <= radius + 1.5, distance(*DESCENDING[:2]) <= DESCENDING[2] + 1.5]
    assert not np.any(aorta & ~(near[0] | near[1])[None]), "the chamber was taken for aorta"
    assert np.all(aorta[labels == AORTA])


def test_another_structures_voxels_are_never_taken():
    hu, truth, labels = phantom()
    cj, ci, radius = ASCENDING
    atrium = distance(cj + radius / SPACING[1], ci) <= 6.0  # a labelled structure overlapping the lumen's back
    labels[:, atrium] = LEFT_ATRIUM
    out, report = draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS)
    assert np.all(out[:, atrium] == LEFT_ATRIUM) and report.widened_ml > 0


def test_an_unenhanced_aorta_is_left_as_the_network_drew_it():
    hu, _, labels = phantom(lumen_hu=45.0)  # blood without contrast: no lumen to find
    out, report = draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS)
    assert np.array_equal(out, labels)
    assert not report.followed and "not enhanced" in report.reason and report.widened_ml == 0


def test_a_small_piece_apart_from_the_aorta_is_left_as_it_is():
    """A few slices of "aorta" inside another bright vessel (the whole-heart model labels a stretch of the left
    pulmonary artery so on LIDC-IDRI-0001): widened, it would take in the whole vessel."""
    hu, _, labels = phantom()
    vessel = distance(32.0, 95.0) <= 9.0
    hu[:, vessel] = LUMEN_HU
    labels[4:8][:, distance(32.0, 95.0) <= 4.0] = AORTA
    out, _ = draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS)
    assert np.array_equal(out[:, vessel], labels[:, vessel])
    # the settings decide what counts as a piece apart: with no minimum it is widened to its vessel
    out, _ = draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS, settings=AortaFollowSettings(min_piece_fraction=0))
    assert np.count_nonzero(out[5][vessel] == AORTA) > 0.9 * np.count_nonzero(vessel)


def test_the_grid_may_run_feet_first_or_front_to_back_reversed():
    hu, _, labels = phantom()
    reference, _ = draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS)
    out, _ = draw_enhanced_aorta_lumen(labels[::-1].copy(), LS, hu[::-1].copy(), SPACING, np.diag([1.0, 1.0, -1.0]))
    assert np.array_equal(out, reference[::-1])
    out, _ = draw_enhanced_aorta_lumen(labels[:, ::-1].copy(), LS, hu[:, ::-1].copy(), SPACING,
                                       np.diag([1.0, -1.0, 1.0]))
    assert np.array_equal(out, reference[:, ::-1])


def test_bad_input_is_refused_with_a_reason():
    hu, _, labels = phantom()
    with pytest.raises(InputError, match="differ in shape"):
        draw_enhanced_aorta_lumen(labels, LS, hu[:-1], SPACING, LPS)
    with pytest.raises(InputError, match="integer"):
        draw_enhanced_aorta_lumen(labels.astype(float), LS, hu, SPACING, LPS)
    with pytest.raises(InputError, match="no structure 'vena_cava'"):
        draw_enhanced_aorta_lumen(labels, LS, hu, SPACING, LPS, key="vena_cava")


def test_the_opening_through_distance_transforms_is_the_opening_with_the_disc():
    """The widening opens each cross-section with a disc of hundreds of voxels through two distance transforms
    (_opened): the result must be scipy's binary_opening with that disc, up to the array's edges."""
    from scipy import ndimage

    from CardiacAI.lumen_tracking import _disc, _opened

    rng = np.random.default_rng(7)
    for _ in range(200):
        mask = ndimage.gaussian_filter(rng.random((48, 57)), rng.uniform(1.0, 5.0)) > 0.5
        radius = rng.uniform(0.5, 9.0)
        assert np.array_equal(_opened(mask, radius), ndimage.binary_opening(mask, _disc(radius))), radius
    assert not _opened(np.ones((5, 5), bool), 3.0).any()  # nothing survives a disc wider than the mask
