"""Continuing the enhanced descending aorta below the network's lower end (CardiacAI.lumen_tracking.
follow_descending_aorta), on phantoms: a bright round lumen in fat running down the whole scan, labelled by the
"network" only on its upper slices together with an ascending aorta in front of it, as the IMA/aorta U-Net labels
LIDC-IDRI-0001's thoracic aorta and stops at the diaphragm."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.labels import get_label_set
from CardiacAI.lumen_tracking import AortaFollowSettings, follow_descending_aorta
from CardiacAI.metrics import dice_coefficient as dice

from aorta_phantoms import distance_mm as phantom_distance_mm, paint as paint_disc

LS = get_label_set("ima-aorta")
AORTA = LS.by_key("aorta").value
LEFT_IMA = LS.by_key("left_internal_mammary_artery").value
SPACING = (0.7, 0.7, 2.5)  # (i, j, k) mm, as LIDC-IDRI-0001
SHAPE = (40, 96, 96)  # (k, j, i); k towards the head, j towards the back (LPS, identity direction)
LPS = np.eye(3)
FAT_HU, LUMEN_HU = -90.0, 400.0
RADIUS_MM = 9.0  # an 18 mm descending aorta, as LIDC-IDRI-0001's above the coeliac trunk
FOUND = range(20, 40)  # the slices the "network" labelled


def centre(k):
    """The descending aorta's centre (j, i) in voxels on slice k: it drifts forwards going down, as in the abdomen."""
    return 62.0 - 0.2 * (20 - k) * (k < 20), 52.0 + 0.1 * k


def disc_distance(cj, ci):
    """Distance in mm of every voxel of a slice from (cj, ci)."""
    return phantom_distance_mm(SHAPE[1:], SPACING, cj, ci)


def paint(hu, k, distance, radius_mm, value=LUMEN_HU):
    """Paint a disc of ``radius_mm`` with a 0.5 mm soft edge (partial volume) onto slice k, over the fat."""
    paint_disc(hu, k, distance, radius_mm, value, FAT_HU)


def phantom(lumen_hu=LUMEN_HU, split_below=None, seed=0):
    """(CT in HU, the descending aorta's true cross-sections (bool), the network's label map).

    ``split_below``: below this slice the lumen is two 5 mm lumens 8 mm either side of the centre (a bifurcation)."""
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, FAT_HU, np.float32)
    truth = np.zeros(SHAPE, bool)
    labels = np.zeros(SHAPE, np.uint8)
    for k in range(SHAPE[0]):
        cj, ci = centre(k)
        if split_below is not None and k < split_below:
            for side in (-1, 1):
                d = disc_distance(cj, ci + side * 8.0 / SPACING[0])
                paint(hu, k, d, 5.0, lumen_hu)
                truth[k] |= d <= 5.0
            continue
        d = disc_distance(cj, ci)
        paint(hu, k, d, RADIUS_MM, lumen_hu)
        truth[k] = d <= RADIUS_MM
        if k in FOUND:
            labels[k][d <= RADIUS_MM] = AORTA
        if k >= 28:  # the ascending aorta, 29 mm in front of the descending aorta
            d = disc_distance(20.0, 45.0)
            paint(hu, k, d, 12.0, lumen_hu)
            labels[k][d <= 12.0] = AORTA
    hu += rng.normal(0.0, 10.0, SHAPE).astype(np.float32)
    return hu, truth, labels


def test_the_descending_aorta_is_followed_down_to_the_scans_lower_edge_on_its_lumen():
    hu, truth, labels = phantom()
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    assert aorta[:20].any(axis=(1, 2)).all()  # every slice below the network's lower end
    for k in range(20):
        assert dice(aorta[k], truth[k]) >= 0.9, (k, dice(aorta[k], truth[k]))
    assert np.array_equal(aorta[20:], labels[20:] == AORTA)  # the network's own labels are kept as they were
    assert report.followed and report.slices_added == 20 and "lower edge" in report.reason
    assert report.lumen_hu == pytest.approx(LUMEN_HU, abs=30) and report.background_hu < -50
    assert report.as_dict(SPACING[2])["length_added_mm"] == 50.0


def test_the_extension_draws_the_edge_where_the_network_draws_it():
    """A network that includes the 2 mm aortic wall: the followed cross-sections are grown by the offset measured
    between its edge and the lumen's half maximum on its own slices, so the aorta has no step where they meet."""
    hu, truth, labels = phantom()
    for k in FOUND:
        labels[k][disc_distance(*centre(k)) <= RADIUS_MM + 2.0] = AORTA
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.edge_offset_mm == pytest.approx(2.0, abs=0.4)
    for k in range(20):
        radius = np.sqrt(np.count_nonzero(out[k] == AORTA) * SPACING[0] * SPACING[1] / np.pi)
        assert radius == pytest.approx(RADIUS_MM + 2.0, abs=0.5), (k, radius)


def test_an_unenhanced_aorta_is_left_as_the_network_drew_it_when_told_to():
    hu, _, labels = phantom(lumen_hu=45.0)  # blood without contrast
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS,
                                          settings=AortaFollowSettings(follow_unenhanced=False))
    assert np.array_equal(out, labels)
    assert not report.followed and "unenhanced" in report.reason


def test_blood_neither_enhanced_nor_unenhanced_is_not_followed():
    """120 HU is neither blood without contrast nor an enhanced lumen: no edge model fits, nothing is drawn."""
    hu, _, labels = phantom(lumen_hu=120.0)
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert np.array_equal(out, labels)
    assert not report.followed and "neither enhanced nor unenhanced" in report.reason


UNENHANCED_HU = 45.0  # blood and the aortic wall without contrast


def unenhanced_phantom(gap=range(22, 28), heart_from=14, seed=0):
    """The phantom without contrast, labelled as the network labels LIDC-IDRI-0002's descending aorta: too thin
    (a 6 mm radius in the 9 mm aorta), with a gap of unlabelled slices (``gap``), and an organ of the same HU (the
    heart, the oesophagus) touching the aorta from in front on the slices from ``heart_from`` up, with no fat
    between them. Returns (CT in HU, the aorta's true cross-sections, the network's label map)."""
    hu, truth, labels = phantom(lumen_hu=UNENHANCED_HU, seed=seed)
    for k in range(SHAPE[0]):
        d = disc_distance(*centre(k))
        if k in FOUND:
            labels[k][(labels[k] == AORTA) & (d <= RADIUS_MM + 0.1)] = 0
            labels[k][d <= 6.0] = AORTA
        if k in gap:
            labels[k][d <= RADIUS_MM + 0.1] = 0
        if heart_from <= k < 28:  # a 10 mm organ whose edge meets the aorta's
            cj, ci = centre(k)
            paint(hu, k, disc_distance(cj - (RADIUS_MM + 9.5) / SPACING[1], ci), 10.0, UNENHANCED_HU)
    return hu, truth, labels


def test_an_unenhanced_aorta_is_followed_as_the_circle_fitting_its_edge_with_the_fat():
    """Without contrast the aorta is a soft-tissue disc: it is drawn whole on the network's thin slices, across
    the network's gap, and below its lower end, to the scan's lower edge, and the organ touching it stays out."""
    hu, truth, labels = unenhanced_phantom()
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    assert report.followed and "lower edge" in report.reason, report.reason
    assert report.lumen_hu == pytest.approx(UNENHANCED_HU, abs=15) and report.background_hu < -50
    assert report.edge_offset_mm is None  # the disc is the vessel's outer edge: nothing to calibrate
    assert report.slices_added == 20 + 6  # below the lower end, and the gap
    for k in range(28):  # the network's lower slices, the gap and below (above 27 the reference slices)
        assert dice(aorta[k], truth[k]) >= 0.9, (k, dice(aorta[k], truth[k]))
    organ = np.zeros(SHAPE, bool)
    for k in range(14, 28):
        cj, ci = centre(k)
        organ[k] = disc_distance(cj - (RADIUS_MM + 9.5) / SPACING[1], ci) <= 9.0
    assert not (aorta & organ).any()
    assert (aorta | (labels != AORTA)).all()  # the network's voxels all stay


def test_the_unenhanced_track_stops_where_muscle_closes_round_the_aorta():
    """Below the diaphragm the crura wrap the aorta, muscle of the same HU with no fat between: with no edge
    left the circle cannot be placed and the track stops rather than guess."""
    hu, _, labels = unenhanced_phantom()
    hu[:10][hu[:10] < UNENHANCED_HU] = UNENHANCED_HU  # from slice 9 down all soft tissue
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    ks = np.nonzero((out == AORTA).any(axis=(1, 2)))[0]
    assert ks.min() == 10 and "edge gave out at slice 9" in report.reason, (ks.min(), report.reason)


def test_stray_voxels_in_front_do_not_make_the_descending_aortas_lower_end():
    """Two voxels of aorta 15 mm in front of the network's lowest piece are no ascending aorta: the descending
    aorta is still found where the ascending aorta lies in front of it, and the gap below it is bridged."""
    hu, truth, labels = unenhanced_phantom(gap=range(12, 20), heart_from=40)
    labels[:12] = 0
    for k in range(12):  # a lower piece of the network's aorta, with a stray pair of voxels in front of it
        labels[k][disc_distance(*centre(k)) <= 6.0] = AORTA
    cj, ci = centre(6)
    labels[6, int(cj - 15.0 / SPACING[1]), int(ci):int(ci) + 2] = AORTA
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.followed and report.slices_added == 8, report
    for k in range(12, 20):
        assert dice(out[k] == AORTA, truth[k]) >= 0.9, (k, dice(out[k] == AORTA, truth[k]))


def test_nothing_is_followed_unless_the_lowest_aorta_lies_below_an_ascending_aorta():
    """Followed down from the aortic root, the track would run into the left ventricle: the lowest aorta is the
    descending aorta only where an aorta cross-section lies in front of it higher up."""
    hu, _, labels = phantom()
    labels[:, :40] = 0  # the ascending aorta not labelled
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert np.array_equal(out, labels)
    assert not report.followed and "behind the ascending aorta" in report.reason


def test_the_track_starts_from_the_descending_aorta_where_the_lowest_slice_also_holds_the_root():
    """Where the network stops the descending aorta at the level of the aortic root, the lowest aorta slice holds
    both, the root the larger: the descending aorta, behind it, is the one followed down, and nothing is drawn
    below the root."""
    hu, truth, labels = phantom()
    labels[20:28] = 0  # the descending aorta labelled only from the root's lowest slice up
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    aorta = out == AORTA
    assert report.followed and report.slices_added == 28
    for k in range(28):
        assert dice(aorta[k], truth[k]) >= 0.9, (k, dice(aorta[k], truth[k]))


def test_the_track_stops_at_a_bifurcation():
    hu, truth, labels = phantom(split_below=8)
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    ks = np.nonzero((out == AORTA).any(axis=(1, 2)))[0]
    assert ks.min() == 8 and "area" in report.reason
    assert report.slices_added == 12


def test_a_branch_leaving_the_aorta_is_not_labelled_as_aorta():
    """The coeliac trunk, superior mesenteric and renal arteries leave the abdominal aorta: a 5 mm artery
    running 25 mm forwards from it on slices 12-14 stays out of the aorta."""
    hu, truth, labels = phantom()
    for k in (12, 13, 14):
        cj, ci = centre(k)
        jj, ii = np.mgrid[0:SHAPE[1], 0:SHAPE[2]]
        branch = (np.abs(ii - ci) * SPACING[0] <= 2.5) & (jj < cj) & ((cj - jj) * SPACING[1] <= RADIUS_MM + 25.0)
        hu[k][branch] = LUMEN_HU
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.slices_added == 20
    for k in (12, 13, 14):
        reach = disc_distance(*centre(k))[out[k] == AORTA].max()
        assert reach <= RADIUS_MM + 2.0, (k, reach)


def test_a_bright_vertebral_body_touching_the_aorta_is_split_off():
    """The abdominal aorta lies on the vertebral bodies, whose cortex and marrow can reach the lumen's half
    maximum with no fat plane between: on slices 4-12 a 350 HU, 30 mm vertebral body touches the aorta from
    behind, and the track goes on past it without labelling any of it."""
    hu, truth, labels = phantom()
    for k in range(4, 13):
        cj, ci = centre(k)
        body = disc_distance(cj + (RADIUS_MM + 15.0) / SPACING[1], ci) <= 15.0
        hu[k][body] = 350.0
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.slices_added == 20 and "lower edge" in report.reason
    for k in range(4, 13):
        assert dice(out[k] == AORTA, truth[k]) >= 0.9, (k, dice(out[k] == AORTA, truth[k]))


def test_another_structures_voxels_are_never_taken_and_stop_the_track():
    hu, _, labels = phantom()
    cj, ci = centre(10)
    labels[10, int(cj), int(ci)] = LEFT_IMA
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert out[10, int(cj), int(ci)] == LEFT_IMA
    ks = np.nonzero((out == AORTA).any(axis=(1, 2)))[0]
    assert ks.min() == 11 and "another structure" in report.reason


def test_the_grid_may_run_feet_first_or_front_to_back_reversed():
    """The patient's superior and anterior directions come from the grid's direction cosines: the same phantom
    with its slices stored head first, or its rows back to front, gives the same labels, moved the same way."""
    hu, _, labels = phantom()
    reference, _ = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    flipped_k = np.diag([1.0, 1.0, -1.0])
    out, report = follow_descending_aorta(labels[::-1].copy(), LS, hu[::-1].copy(), SPACING, flipped_k)
    assert report.followed and np.array_equal(out, reference[::-1])
    flipped_j = np.diag([1.0, -1.0, 1.0])
    out, report = follow_descending_aorta(labels[:, ::-1].copy(), LS, hu[:, ::-1].copy(), SPACING, flipped_j)
    assert report.followed and np.array_equal(out, reference[:, ::-1])
    # read with the wrong front, the ascending aorta is taken for the descending one: it ends below its lowest
    # labelled slice, and nothing is added
    out, report = follow_descending_aorta(labels, LS, hu, SPACING, flipped_j)
    assert report.slices_added == 0 and "lost the lumen at slice 27" in report.reason
    assert np.array_equal(out, labels)


def test_the_settings_bound_the_lumens_change_from_slice_to_slice():
    """A lumen narrowing by half from one slice to the next is not the same vessel under the default bound."""
    hu, _, labels = phantom()
    for k in range(10):
        hu[k] = FAT_HU
        paint(hu, k, disc_distance(*centre(k)), RADIUS_MM * 0.6)
    _, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS)
    assert report.slices_added == 10 and "area" in report.reason
    _, report = follow_descending_aorta(labels, LS, hu, SPACING, LPS,
                                        settings=AortaFollowSettings(area_change=(0.3, 1.4)))
    assert report.slices_added == 20


def test_bad_input_is_refused_with_a_reason():
    hu, _, labels = phantom()
    with pytest.raises(InputError, match="differ in shape"):
        follow_descending_aorta(labels, LS, hu[:-1], SPACING, LPS)
    with pytest.raises(InputError, match="integer"):
        follow_descending_aorta(labels.astype(float), LS, hu, SPACING, LPS)
    with pytest.raises(InputError, match="spacing"):
        follow_descending_aorta(labels, LS, hu, (0.7, -0.7, 2.5), LPS)
    with pytest.raises(InputError, match="no structure 'vena_cava'"):
        follow_descending_aorta(labels, LS, hu, SPACING, LPS, key="vena_cava")
