"""Volume files: NIfTI/NRRD/MHA round trips, label maps, atomic writes, format conventions."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from CardiacAI.errors import InputError, UnsupportedFormatError
from CardiacAI.image import Image
from CardiacAI.io import read_image, read_labelmap, write_image, write_labelmap

FORMATS = [".nii", ".nii.gz", ".nrrd", ".mha"]


def small_ct(dtype=np.int16) -> Image:
    """A small oblique CT-like volume (HU) with non-trivial geometry."""
    rng = np.random.default_rng(0)
    array = rng.integers(-1024, 2000, size=(6, 7, 8)).astype(dtype)
    angle = np.radians(20)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return Image(array=array, spacing=(0.7, 0.8, 2.5), origin=(-166.0, -171.699997, -340.0),
                 direction=direction, modality="CT")


def assert_same_geometry(a: Image, b: Image, atol: float = 1e-6) -> None:
    assert a.array.shape == b.array.shape
    np.testing.assert_allclose(a.spacing, b.spacing, atol=atol, rtol=0)
    np.testing.assert_allclose(a.origin, b.origin, atol=atol, rtol=0)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol, rtol=0)


def no_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


@pytest.mark.parametrize("suffix", FORMATS)
def test_lidc1_round_trip(lidc1_dir, lidc1_image, tmp_path, suffix):
    path = write_image(lidc1_image, tmp_path / f"ct{suffix}")
    back = read_image(path)
    assert back.array.dtype == np.int16
    assert np.array_equal(back.array, lidc1_image.array)
    assert_same_geometry(back, lidc1_image)
    # The written geometry is still the DICOM one, computed here independently with pydicom.
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(lidc1_dir.glob("*.dcm"))]
    iop = np.array([float(v) for v in headers[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    ipps = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    np.testing.assert_allclose(back.origin, ipps[np.argmin(ipps @ normal)], atol=1e-6)
    np.testing.assert_allclose(back.direction, np.column_stack([iop[:3], iop[3:], normal]), atol=1e-6)
    assert back.metadata["format"] in ("nifti", "nrrd", "metaimage")


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_write_image_keeps_dtype_and_oblique_geometry(tmp_path, suffix, dtype):
    image = small_ct(dtype)
    back = read_image(write_image(image, tmp_path / f"v{suffix}"))
    assert back.array.dtype == dtype
    assert np.array_equal(back.array, image.array)
    assert_same_geometry(back, image)


def test_nifti_is_read_into_lps(tmp_path):
    # nibabel writes the RAS affine; the LPS origin must have x and y negated.
    affine = np.diag([0.5, 0.6, 2.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]  # RAS position of voxel (0, 0, 0)
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # nibabel order (i, j, k)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ras.nii.gz")
    image = read_image(tmp_path / "ras.nii.gz")
    assert image.origin == pytest.approx((-10.0, -20.0, 30.0))
    np.testing.assert_allclose(image.direction, np.diag([-1.0, -1.0, 1.0]), atol=1e-6)
    assert image.spacing == pytest.approx((0.5, 0.6, 2.0))
    np.testing.assert_array_equal(image.array, data.transpose(2, 1, 0))  # (k, j, i)
    np.testing.assert_allclose(image.ijk_to_ras, affine, atol=1e-6)


@pytest.mark.parametrize("suffix", [".nhdr", ".mhd"])
def test_detached_header_formats_are_read(tmp_path, suffix):
    image = small_ct()
    sitk.WriteImage(image.to_sitk(), str(tmp_path / f"v{suffix}"))
    back = read_image(tmp_path / f"v{suffix}")
    assert np.array_equal(back.array, image.array)
    assert_same_geometry(back, image)


@pytest.mark.parametrize("suffix", [".nhdr", ".mhd", ".png", ".dcm", ""])
def test_write_refuses_unsupported_extensions(tmp_path, suffix):
    with pytest.raises(UnsupportedFormatError) as err:
        write_image(small_ct(), tmp_path / f"v{suffix}")
    assert ".nii.gz" in str(err.value) and ".mha" in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", FORMATS)
def test_labelmap_written_as_uint8_compressed(tmp_path, suffix):
    reference = small_ct()
    labels = np.zeros(reference.array.shape, dtype=np.int64)
    labels[1:4, 2:5, 3:7] = 3
    labels[4, 0, 0] = 10
    path = write_labelmap(reference.with_array(labels), tmp_path / f"seg{suffix}")
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt8
    back = read_labelmap(path, reference=reference)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels)
    assert_same_geometry(back, reference)


def test_labelmap_above_255_is_uint16_and_compression_helps(tmp_path):
    labels = np.zeros((40, 40, 40), dtype=np.int32)
    labels[10:20, 10:30, 5:25] = 300
    image = Image(array=labels, spacing=(1, 1, 1))
    path = write_labelmap(image, tmp_path / "seg.nrrd")
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt16
    assert path.stat().st_size < labels.size * 2 / 4  # compressed: far below the raw uint16 size
    np.testing.assert_array_equal(read_labelmap(path).array, labels)


@pytest.mark.parametrize("bad, phrase", [
    (np.full((3, 4, 5), 0.5, dtype=np.float32), "non-integer values"),
    (np.full((3, 4, 5), -1, dtype=np.int16), "labels must be within 0-65535"),
    (np.full((3, 4, 5), 70000, dtype=np.int32), "labels must be within 0-65535"),
])
def test_labelmap_refuses_non_labels(tmp_path, bad, phrase):
    with pytest.raises(InputError, match=phrase):
        write_labelmap(Image(array=bad, spacing=(1, 1, 1)), tmp_path / "seg.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_float_file_with_integer_labels_reads_as_labelmap(tmp_path):
    image = small_ct()
    labels = (np.arange(image.array.size).reshape(image.array.shape) % 4).astype(np.float32)
    write_image(image.with_array(labels), tmp_path / "float_labels.nii.gz")
    back = read_labelmap(tmp_path / "float_labels.nii.gz", reference=image)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.astype(np.uint8))


def test_read_labelmap_refuses_other_grid(tmp_path):
    reference = small_ct()
    shifted = Image(array=np.zeros(reference.array.shape, np.uint8), spacing=reference.spacing,
                    origin=(reference.origin[0] + 5.0, reference.origin[1], reference.origin[2]),
                    direction=reference.direction)
    write_labelmap(shifted, tmp_path / "seg.nrrd")
    with pytest.raises(InputError) as err:
        read_labelmap(tmp_path / "seg.nrrd", reference=reference)
    message = str(err.value)
    assert "not on the grid of the image" in message
    assert "origin (-161, -171.7, -340)" in message and "origin (-166, -171.7, -340)" in message
    assert "resample" in message.lower()

    other_size = Image(array=np.zeros((6, 7, 9), np.uint8), spacing=reference.spacing, origin=reference.origin,
                       direction=reference.direction)
    write_labelmap(other_size, tmp_path / "seg2.nrrd")
    with pytest.raises(InputError, match="9x7x6 voxels.*8x7x6 voxels"):
        read_labelmap(tmp_path / "seg2.nrrd", reference=reference)


def test_existing_file_replaced_only_by_complete_write(tmp_path, monkeypatch):
    target = tmp_path / "ct.nrrd"
    first = small_ct()
    write_image(first, target)
    before = target.read_bytes()

    def failing_write(image, path, *args, **kwargs):
        Path(path).write_bytes(b"NRRD0004\npartial")  # a half-written file, then the writer dies
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", failing_write)
    with pytest.raises(InputError, match="cannot write"):
        write_image(small_ct(np.float32), target)
    assert target.read_bytes() == before
    assert no_leftovers(tmp_path) == []

    monkeypatch.undo()
    second = first.with_array(first.array + 1)
    write_image(second, target)
    assert np.array_equal(read_image(target).array, second.array)
    assert no_leftovers(tmp_path) == []


def test_write_into_missing_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_image(small_ct(), tmp_path / "nowhere" / "ct.nii.gz")


def test_nifti_nan_kept_where_it_is(tmp_path):
    """ITK's NIfTI reader turns NaN into 0; the reader restores them so they cannot pass as water."""
    image = small_ct(np.float32)
    array = image.array.copy()
    array[2, 3, 4] = np.nan
    array[5, 0, 1] = -np.inf
    write_image(image.with_array(array), tmp_path / "nan.nii.gz")
    back = read_image(tmp_path / "nan.nii.gz", require_ct=False)
    assert np.isnan(back.array[2, 3, 4]) and back.array[5, 0, 1] == -np.inf
    finite = np.isfinite(array)
    assert np.array_equal(back.array[finite], array[finite])


def test_written_file_has_ordinary_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result must still be readable by others
    exactly like a file created with open()."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    path = write_image(small_ct(), tmp_path / "ct.nrrd")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
