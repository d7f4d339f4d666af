"""Following a thin enhanced artery's lumen from the pieces a network found (CardiacAI.lumen_tracking), on
phantoms: a bright tube in fat with a few of its slices labelled, as the IMA/aorta network labels stretches of the
real internal mammary arteries."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.labels import get_label_set
from CardiacAI.lumen_tracking import TrackingSettings, follow_thin_arteries

LS = get_label_set("ima-aorta")
LEFT = LS.by_key("left_internal_mammary_artery").value
AORTA = LS.by_key("aorta").value
SPACING = (0.7, 0.7, 2.5)  # (i, j, k) mm, as LIDC-IDRI-0001
SHAPE = (40, 48, 48)  # (k, j, i)
FAT_HU = -80.0
SIGMA_MM = 0.9  # Gaussian profile: full width at half maximum 2.1 mm, as the real IMAs (1.5-2.1 mm)


def centre(k):
    """The tube's centre (j, i) in voxels on slice k: it drifts 0.25 voxel per slice, as an IMA moves beside the sternum."""
    return 20.0 + 0.25 * k, 24.0 - 0.1 * k


def phantom(peak_hu=320.0, slices=range(4, 36), seed=0):
    """(CT in HU, distance in mm from the tube's centre on each slice (inf off the tube's slices))."""
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, FAT_HU) + rng.normal(0.0, 10.0, SHAPE)
    jj, ii = np.mgrid[0:SHAPE[1], 0:SHAPE[2]]
    distance = np.full(SHAPE, np.inf)
    for k in slices:
        cj, ci = centre(k)
        distance[k] = np.hypot((jj - cj) * SPACING[1], (ii - ci) * SPACING[0])
        hu[k] += (peak_hu - FAT_HU) * np.exp(-distance[k] ** 2 / (2 * SIGMA_MM ** 2))
    return hu.astype(np.float32), distance


def seeded(distance, slices=range(16, 21)):
    """A label map with the tube's core labelled on a few slices only (what the network found)."""
    labels = np.zeros(SHAPE, np.uint8)
    for k in slices:
        labels[k][distance[k] <= 0.8] = LEFT
    return labels


def labelled_slices(labels, value=LEFT):
    return np.nonzero((labels == value).any(axis=(1, 2)))[0]


def test_a_labelled_stretch_is_followed_along_the_whole_tube_and_drawn_at_half_maximum():
    hu, distance = phantom()
    out, reports = follow_thin_arteries(seeded(distance), LS, hu, SPACING)
    ks = labelled_slices(out)
    assert ks.min() == 4 and ks.max() == 35 and len(ks) == 32  # every slice of the tube, none beyond it
    artery = out == LEFT
    # on the tube and as wide as its half-maximum lumen (radius 1.06 mm), not the seed's 0.8 mm core
    assert distance[artery].max() <= 1.2
    half_max_area = np.pi * (SIGMA_MM * np.sqrt(2 * np.log(2))) ** 2
    areas = artery.sum(axis=(1, 2))[ks] * SPACING[0] * SPACING[1]
    assert np.all(np.abs(areas - half_max_area) <= 0.5 * half_max_area), areas
    report = reports["left_internal_mammary_artery"]
    assert (report.slices_before, report.slices_after, report.pieces_followed) == (5, 32, 1)
    assert reports["right_internal_mammary_artery"].slices_after == 0


def test_without_redraw_the_found_slices_keep_the_networks_cross_section():
    hu, distance = phantom()
    labels = seeded(distance)
    out, _ = follow_thin_arteries(labels, LS, hu, SPACING, settings=TrackingSettings(redraw=False))
    found = slice(16, 21)
    assert np.array_equal(out[found], labels[found])
    assert len(labelled_slices(out)) == 32


def test_the_track_stops_where_the_artery_meets_a_large_bright_structure():
    """A costal cartilage or rib the artery runs against is as bright as the lumen: the half-maximum region then
    spreads beyond the artery, and the track must stop rather than label the cartilage."""
    hu, distance = phantom()
    cj, ci = centre(30)
    block = (slice(30, 40), slice(int(cj) - 6, int(cj) + 7), slice(int(ci) - 6, int(ci) + 7))
    hu[block] = 300.0
    out, _ = follow_thin_arteries(seeded(distance), LS, hu, SPACING)
    ks = labelled_slices(out)
    assert ks.min() == 4 and ks.max() == 29
    assert not (out[block] == LEFT).any()


def test_an_unenhanced_artery_is_left_as_the_network_drew_it():
    hu, distance = phantom(peak_hu=40.0)  # blood without contrast
    labels = seeded(distance)
    out, reports = follow_thin_arteries(labels, LS, hu, SPACING)
    assert np.array_equal(out, labels)
    report = reports["left_internal_mammary_artery"]
    assert report.pieces_unenhanced == 1 and report.pieces_followed == 0 and report.slices_after == 5


def test_another_structures_voxels_are_never_taken_and_stop_the_track():
    hu, distance = phantom()
    labels = seeded(distance)
    aorta = np.zeros(SHAPE, bool)
    aorta[26:29] = distance[26:29] <= 2.0
    labels[aorta] = AORTA
    out, _ = follow_thin_arteries(labels, LS, hu, SPACING)
    assert np.array_equal(out == AORTA, aorta)
    assert labelled_slices(out).max() == 25 and labelled_slices(out).min() == 4


def test_the_track_stops_where_the_artery_ends_in_fat():
    hu, distance = phantom(slices=range(10, 26))
    out, _ = follow_thin_arteries(seeded(distance), LS, hu, SPACING)
    ks = labelled_slices(out)
    assert ks.min() == 10 and ks.max() == 25


def test_the_long_axis_may_be_any_array_axis():
    """A sagittal or coronal series has the body's long axis on another array axis: the same phantom with its
    slices along i gives the same labels, moved the same way."""
    hu, distance = phantom()
    labels = seeded(distance)
    axial, _ = follow_thin_arteries(labels, LS, hu, SPACING)
    moved = lambda a: np.ascontiguousarray(np.moveaxis(a, 0, 2))  # (k, j, i) -> (j, i, k): slices along the last axis
    # the moved array's axes (k', j', i') = (j, i, k): spacing (i', j', k') = (k, i, j) mm
    out, _ = follow_thin_arteries(moved(labels), LS, moved(hu), (SPACING[2], SPACING[0], SPACING[1]), long_axis=2)
    assert np.array_equal(out, moved(axial))


def test_bad_input_is_refused_with_a_reason():
    hu, distance = phantom()
    labels = seeded(distance)
    with pytest.raises(InputError, match="differ in shape"):
        follow_thin_arteries(labels, LS, hu[:-1], SPACING)
    with pytest.raises(InputError, match="integer"):
        follow_thin_arteries(labels.astype(float), LS, hu, SPACING)
    with pytest.raises(InputError, match="long_axis"):
        follow_thin_arteries(labels, LS, hu, SPACING, long_axis=3)
    with pytest.raises(InputError, match="spacing"):
        follow_thin_arteries(labels, LS, hu, (0.7, 0.0, 2.5))
