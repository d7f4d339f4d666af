"""Tests of the slanted-tube probe of the real abdominal aorta (benchmarks/real_aorta_probe.py): the tubes it
paints are where and as wide as it says."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_aorta_probe as probe  # noqa: E402


def test_the_tube_is_a_disk_of_the_given_width_at_each_slices_centre():
    centres = np.array([[40.0, 50.0], [45.0, 50.0], [np.nan, np.nan], [60.0, 52.0]])
    tube = probe.tube_along((4, 100, 100), centres, diameter_mm=14.0, spacing_ji=(0.7, 0.7))
    assert not tube[2].any()  # no centre, no tube
    for k in (0, 1, 3):
        j, i = np.nonzero(tube[k])
        assert abs(j.mean() - centres[k, 0]) < 0.5 and abs(i.mean() - centres[k, 1]) < 0.5
        area_mm2 = tube[k].sum() * 0.7 * 0.7
        assert abs(area_mm2 - np.pi * 7.0**2) < 0.05 * np.pi * 7.0**2


def test_the_slant_fraction_scales_the_forward_course_about_its_mean():
    """0 gives a straight tube at the real lumen's mean centre, 1 the real course, 0.5 half its forward run; the
    column stays at the mean (only the forward slant is probed)."""
    real = np.array([[100.0, 40.0], [90.0, 42.0], [np.nan, np.nan], [70.0, 44.0]])
    straight, half, full = (probe.slanted_centres(real, f) for f in (0.0, 0.5, 1.0))
    mean_j, mean_i = 260.0 / 3, 42.0
    assert np.allclose(straight[[0, 1, 3]], [[mean_j, mean_i]] * 3)
    assert np.allclose(full[[0, 1, 3], 0], real[[0, 1, 3], 0]) and np.allclose(full[[0, 1, 3], 1], mean_i)
    assert np.isclose(half[0, 0] - half[3, 0], 0.5 * (real[0, 0] - real[3, 0]))
    assert np.isnan(half[2]).all()
