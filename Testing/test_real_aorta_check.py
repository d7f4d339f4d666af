"""Tests of the real-scan aorta check used for IMA/aorta model selection (benchmarks/real_aorta_check.py):
the lumen tracker on a phantom and on LIDC-IDRI-0001, and what its scores mean."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_aorta_check as check  # noqa: E402

SPACING = (0.7, 0.7, 2.5)  # (i, j, k) mm, as the real scan


def _phantom():
    """A contrast-filled tube (20 mm wide, 400 HU) running along k through 60 slices of soft tissue (40 HU),
    touching a vertebral body behind it (trabecular bone 180 HU in a 1.4 mm cortex of 700 HU, as on the real
    scan); above slice 50 it runs into a wide bright chamber, below slice 5 it ends.
    Returns (hu (K, J, I), lumen (K, J, I) bool)."""
    hu = np.full((60, 140, 120), 40.0, np.float32)
    jj, ii = np.mgrid[0:140, 0:120]
    disk = np.hypot((jj - 50) * 0.7, (ii - 60) * 0.7) <= 10.0
    lumen = np.zeros(hu.shape, bool)
    lumen[5:50] = disk
    hu[lumen] = 400.0
    spine = np.hypot((jj - 50 - 30) * 0.7, (ii - 60) * 0.7)  # its centre 21 mm behind the tube's: they touch
    hu[:, (spine <= 11.0) & ~disk] = 700.0
    hu[:, spine <= 9.6] = 180.0
    hu[50:, 10:70, 20:110] = 400.0  # the chamber: too large to be the lumen
    return hu, lumen


def test_tracker_follows_a_lumen_past_a_touching_bone_and_stops_where_it_ends():
    hu, truth = _phantom()
    found = check.track_lumen(hu, (30, 50, 60), SPACING)
    assert np.array_equal(found.any(axis=(1, 2)), truth.any(axis=(1, 2)))  # slices 5-49: not the chamber, not below
    dice = 2 * (found & truth).sum() / (found.sum() + truth.sum())
    assert dice > 0.97
    # the vertebral body is not taken: none of its trabecular bone, of its cortex only the sliver touching the tube
    assert not (found & (hu == 180.0)).any() and (found & (hu == 700.0)).sum() < 0.02 * found.sum()


def test_tracker_refuses_a_seed_off_the_lumen():
    hu, _ = _phantom()
    with pytest.raises(ValueError, match="no lumen at the seed"):
        check.track_lumen(hu, (30, 15, 15), SPACING)


def test_scores_say_how_much_of_the_lumen_a_model_labels():
    hu, lumen = _phantom()
    perfect = check.compare(lumen, lumen, SPACING, root_lowest_k=40)
    assert perfect["slice_recall"] == 1.0 and perfect["dice_in_tube"] == 1.0 and perfect["missed_below_mm"] == 0.0
    assert perfect["false_aorta_below_root_ml"] == 0.0
    # a model that stops 20 slices (50 mm) above the lumen's lower end and adds a false piece low down
    upper = lumen.copy()
    upper[:25] = False
    upper[2:6, 5:15, 5:15] = True
    scores = check.compare(upper, lumen, SPACING, root_lowest_k=40)
    assert scores["slice_recall"] == pytest.approx(25 / 45, abs=1e-3)
    assert scores["missed_below_mm"] == 50.0 and scores["covered_slices"] == [25, 49]
    assert scores["false_aorta_below_root_ml"] == pytest.approx(4 * 100 * 0.7 * 0.7 * 2.5 / 1000, abs=0.05)
    assert scores["dice_in_tube"] == pytest.approx(2 * 25 / (25 + 45), abs=0.01)


def test_reference_on_the_real_contrast_ct_is_the_whole_descending_aorta(lidc1_image):
    """What model selection relies on: the reference runs from the bottom of LIDC-IDRI-0001 (upper abdomen) to
    just below the arch, an aortic lumen 14-26 mm wide on every slice (reviewed in the pictures it draws)."""
    lumen = check.track_lumen(lidc1_image.array, check.SEED, lidc1_image.spacing)
    slices = np.flatnonzero(lumen.any(axis=(1, 2)))
    assert slices.min() == 0 and 90 <= slices.max() <= 100  # the scan's lowest slice ... below the arch
    assert np.array_equal(slices, np.arange(slices.min(), slices.max() + 1))
    sx, sy, _ = lidc1_image.spacing
    widths = [2 * np.sqrt(lumen[k].sum() * sx * sy / np.pi) for k in slices]
    assert 14 <= min(widths) and max(widths) <= 26, (min(widths), max(widths))
    assert np.median(lidc1_image.array[lumen]) > 300  # contrast-filled
