"""The Image type, the LPS/RAS conversion and atomic writes: the geometry every module relies on."""

import numpy as np
import pytest

from CardiacAI.coordinates import (
    LPS_TO_RAS,
    grid_from_ijk_to_ras,
    ijk_to_lps_matrix,
    ijk_to_ras_matrix,
    lps_to_ras_points,
)
from CardiacAI.errors import InputError
from CardiacAI.image import Image, check_ct_volume
from CardiacAI.io.atomic import atomic_output, full_suffix


def _oblique_direction():
    # 20 degrees about z then 10 degrees about x: an oblique but orthonormal grid.
    a, b = np.radians(20), np.radians(10)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def test_ijk_to_lps_maps_voxel_indices_to_millimetres():
    m = ijk_to_lps_matrix((0.7, 0.7, 2.5), (-180.0, -170.0, -300.0), np.eye(3))
    assert np.allclose(m @ [0, 0, 0, 1], [-180, -170, -300, 1])
    assert np.allclose(m @ [10, 20, 4, 1], [-180 + 7, -170 + 14, -300 + 10, 1])


def test_ras_is_lps_with_first_two_axes_flipped_and_round_trips():
    spacing, origin, direction = (0.7, 0.8, 2.5), (10.0, -20.0, 30.0), _oblique_direction()
    ras = ijk_to_ras_matrix(spacing, origin, direction)
    assert np.allclose(ras, LPS_TO_RAS @ ijk_to_lps_matrix(spacing, origin, direction))
    s2, o2, d2 = grid_from_ijk_to_ras(ras)
    assert np.allclose(s2, spacing) and np.allclose(o2, origin) and np.allclose(d2, direction)
    assert np.allclose(lps_to_ras_points([[1, 2, 3]]), [[-1, -2, 3]])
    assert np.allclose(lps_to_ras_points(lps_to_ras_points([[1, 2, 3]])), [[1, 2, 3]])


def test_image_matches_simpleitk_geometry():

    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    img = Image(arr, spacing=(0.5, 0.6, 2.0), origin=(1, 2, 3), direction=_oblique_direction(), modality="CT")
    s = img.to_sitk()
    assert s.GetSize() == (6, 5, 4)  # (i, j, k)
    # ITK's own index-to-physical mapping must agree with our IJK-to-LPS matrix.
    lps = s.TransformIndexToPhysicalPoint((5, 4, 3))
    assert np.allclose(lps, (img.ijk_to_lps @ [5, 4, 3, 1])[:3])
    back = Image.from_sitk(s, modality="CT")
    assert back.same_geometry(img) and np.array_equal(back.array, arr) and back.array.dtype == np.int16


def test_image_refuses_non_3d_and_bad_geometry():
    with pytest.raises(InputError, match="3D volume"):
        Image(np.zeros((5, 5)), spacing=(1, 1, 1))
    with pytest.raises(InputError, match="not positive"):
        Image(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(InputError, match="orthonormal"):
        Image(np.zeros((2, 2, 2)), spacing=(1, 1, 1), direction=np.diag([1, 2, 1]))


def test_check_ct_volume_messages():
    good = np.random.default_rng(0).normal(0, 100, (8, 8, 8)).astype(np.float32)
    check_ct_volume(Image(good, spacing=(1, 1, 1), modality="CT"))
    with pytest.raises(InputError, match="modality is MR.*needs CT"):
        check_ct_volume(Image(good, spacing=(1, 1, 1), modality="MR"))
    with pytest.raises(InputError, match="constant"):
        check_ct_volume(Image(np.full((8, 8, 8), -1000, np.int16), spacing=(1, 1, 1)))
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="1 non-finite"):
        check_ct_volume(Image(bad, spacing=(1, 1, 1)))
    with pytest.raises(InputError, match="outside the plausible range"):
        check_ct_volume(Image(good, spacing=(1, 1, 100)))
    with pytest.raises(InputError, match="empty or flat"):
        check_ct_volume(Image(np.zeros((1, 8, 8)), spacing=(1, 1, 1)))


def test_atomic_output_keeps_old_file_on_failure_and_replaces_on_success(tmp_path):
    dest = tmp_path / "labels.seg.nrrd"
    dest.write_text("clinician's edits")
    with pytest.raises(RuntimeError):
        with atomic_output(dest) as tmp:
            assert tmp.name.endswith(".seg.nrrd") and tmp.parent == tmp_path
            tmp.write_text("half a fil")
            raise RuntimeError("writer crashed")
    assert dest.read_text() == "clinician's edits"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.seg.nrrd"]  # no temp file left
    with atomic_output(dest) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new"


def test_atomic_output_refuses_missing_folder_and_empty_result(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "x.nii.gz"):
            pass
    dest = tmp_path / "x.nii.gz"
    with pytest.raises(OSError, match="no data"):
        with atomic_output(dest):
            pass
    assert not dest.exists()
    assert full_suffix("a/b.SEG.NRRD") == ".seg.nrrd" and full_suffix("x.mha") == ".mha"
