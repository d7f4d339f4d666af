"""Dice, surface distances, volumes and mass, checked against shapes whose answers are known analytically."""

import math

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.image import Image
from CardiacAI.metrics import (
    compare_labelmaps,
    dice_coefficient,
    myocardial_mass_g,
    structure_volumes_ml,
    surface_distances_mm,
)


def _box(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_dice_of_half_overlapping_boxes():
    a = _box((10, 10, 10), (0, 0, 0), (10, 10, 4))
    b = _box((10, 10, 10), (0, 0, 2), (10, 10, 6))
    # |A| = |B| = 400, |A∩B| = 200
    assert dice_coefficient(a, b) == pytest.approx(0.5)
    assert dice_coefficient(a, a) == 1.0
    assert dice_coefficient(a, np.zeros_like(a)) == 0.0


def test_surface_distance_uses_anisotropic_spacing_in_ijk_order():
    # Two slabs offset by 3 voxels along k (axis 0 of the array). With spacing (i, j, k) =
    # (0.5, 0.5, 2.0) mm every surface point of the moved face is 3 x 2.0 = 6 mm away.
    shape = (30, 20, 20)
    a = _box(shape, (5, 0, 0), (15, 20, 20))
    b = _box(shape, (8, 0, 0), (18, 20, 20))
    hd95, asd = surface_distances_mm(a, b, spacing_ijk=(0.5, 0.5, 2.0))
    assert hd95 == pytest.approx(6.0, abs=1e-6)
    assert 0 < asd <= 6.0
    # The same shift along i costs 3 x 0.5 = 1.5 mm.
    c = _box(shape, (5, 0, 0), (15, 20, 10))
    d = _box(shape, (5, 0, 3), (15, 20, 13))
    hd95_i, _ = surface_distances_mm(c, d, spacing_ijk=(0.5, 0.5, 2.0))
    assert hd95_i == pytest.approx(1.5, abs=1e-6)


def test_empty_structure_conventions():
    empty = np.zeros((5, 5, 5), bool)
    full = _box((5, 5, 5), (1, 1, 1), (3, 3, 3))
    assert surface_distances_mm(empty, empty, (1, 1, 1)) == (0.0, 0.0)
    hd, asd = surface_distances_mm(full, empty, (1, 1, 1))
    assert math.isinf(hd) and math.isinf(asd)
    assert dice_coefficient(empty, empty) == 1.0


def test_compare_labelmaps_reports_volumes_in_ml_and_refuses_other_grids():
    arr = np.zeros((20, 20, 20), np.uint8)
    arr[:10] = 1  # 10*20*20 = 4000 voxels
    arr[10:15] = 2
    ref = Image(arr, spacing=(0.5, 0.5, 2.0))  # 0.5 mm³ per voxel
    pred = ref.with_array(np.where(arr == 2, 0, arr))
    result = compare_labelmaps(pred, ref, {"a": 1, "b": 2})
    assert result["a"].dice == 1.0 and result["a"].hd95_mm == 0.0
    assert result["a"].volume_ref_ml == pytest.approx(4000 * 0.5 / 1000)
    assert result["b"].dice == 0.0 and math.isinf(result["b"].hd95_mm)
    other = Image(arr, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="different grids"):
        compare_labelmaps(pred, other, {"a": 1})


def test_volumes_and_mass():
    arr = np.zeros((10, 10, 10), np.uint8)
    arr[2:6, 2:6, 2:6] = 4  # 64 voxels of 8 mm³ = 0.512 mL
    lm = Image(arr, spacing=(2.0, 2.0, 2.0))
    vols = structure_volumes_ml(lm, {"lv_myocardium": 4, "absent": 9})
    assert vols["lv_myocardium"] == pytest.approx(0.512)
    assert vols["absent"] == 0.0
    assert myocardial_mass_g(100.0) == pytest.approx(105.0)
    with pytest.raises(InputError):
        myocardial_mass_g(-1.0)


def test_mask_shape_mismatch_is_refused():
    with pytest.raises(InputError, match="shapes differ"):
        dice_coefficient(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
