"""Bad input: each case raises a CardiacAIError subclass saying what is wrong and what to do, and
reading leaves nothing behind in the input folder.

Small synthetic inputs are built in tmp_path; a few tests copy (part of) the real LIDC-IDRI-0001
series into tmp_path and damage the copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import MRImageStorage, generate_uid

from CardiacAI.errors import CardiacAIError, DicomError, InputError, UnsupportedFormatError
from CardiacAI.image import Image
from CardiacAI.io import read_image, write_image
from dicom_builders import make_series, make_slice, raw_slices


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_refused(path: Path, error: type, *phrases: str, **kwargs) -> str:
    """read_image(path) raises ``error`` whose message contains every phrase; nothing is written."""
    root = path if path.is_dir() else path.parent
    before = listing(root) if root.exists() else None
    with pytest.raises(error) as err:
        read_image(path, **kwargs)
    message = str(err.value)
    assert isinstance(err.value, CardiacAIError)
    assert err.value.remedy, f"no remedy in: {message}"
    for phrase in phrases:
        assert phrase.lower() in message.lower(), f"{phrase!r} not in: {message}"
    if before is not None:
        assert listing(root) == before
    return message


def copy_real_slices(source: Path, dest: Path, count: int | None = None) -> list[Path]:
    """Copy the real series (or `count` consecutive slices from its middle), sorted along z."""
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(source.glob("*.dcm"),
                   key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    if count is not None:
        start = (len(files) - count) // 2
        files = files[start:start + count]
    return [Path(shutil.copy2(f, dest / f.name)) for f in files]


def write_nifti(path: Path, array_kji: np.ndarray, spacing=(0.7, 0.7, 2.5)) -> Path:
    """A NIfTI of an array given in (k, j, i) order, through CardiacAI's own writer-independent path."""
    affine = np.diag(list(spacing) + [1.0])
    nib.save(nib.Nifti1Image(np.asarray(array_kji).transpose(2, 1, 0), affine), path)
    return path


# ------------------------------------------------------------------------------------------------
# Paths and formats
# ------------------------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    for missing in (tmp_path / "nope", tmp_path / "nope.nii.gz", tmp_path / "nope.dcm"):
        with pytest.raises(InputError) as err:
            read_image(missing)
        assert "does not exist" in str(err.value) and "check the path" in str(err.value).lower()


def test_unknown_extension(tmp_path):
    (tmp_path / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert_refused(tmp_path / "scan.png", UnsupportedFormatError, "neither DICOM nor a supported volume",
                   ".nii.gz", ".nrrd", ".mha")


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    (tmp_path / "random.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    assert_refused(tmp_path, DicomError, "no DICOM image found", "2 file(s) looked at", "2 not DICOM",
                   "give the folder that holds the CT series")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(empty, DicomError, "no DICOM image found", "0 file(s) looked at")


def test_random_bytes_with_dcm_name(tmp_path):
    (tmp_path / "slice.dcm").write_bytes(np.random.default_rng(1).bytes(4096))
    assert_refused(tmp_path / "slice.dcm", DicomError, "slice.dcm is not a DICOM file")


def test_random_bytes_with_nifti_name(tmp_path):
    (tmp_path / "ct.nii.gz").write_bytes(np.random.default_rng(2).bytes(4096))
    assert_refused(tmp_path / "ct.nii.gz", InputError, "cannot read ct.nii.gz as nifti", "damaged",
                   "re-export")


def test_truncated_header_file(tmp_path, lidc1_dir):
    source = sorted(lidc1_dir.glob("*.dcm"))[0]
    (tmp_path / "cut.dcm").write_bytes(source.read_bytes()[:800])
    assert_refused(tmp_path / "cut.dcm", DicomError, "without pixel data", "truncated")


def test_truncated_slice_in_series(tmp_path, lidc1_dir):
    files = copy_real_slices(lidc1_dir, tmp_path / "s", count=12)
    data = files[5].read_bytes()
    files[5].write_bytes(data[: len(data) - 100_000])  # pixel data cut short
    assert_refused(tmp_path / "s", DicomError, f"pixel data of {files[5].name}", "damaged or truncated",
                   "re-export or re-copy")


def test_broken_pixel_data_in_valid_header(tmp_path):
    series = make_series(tmp_path / "s", n=6)
    ds = pydicom.dcmread(series["files"][2])
    ds.PixelData = ds.PixelData[:-7]  # odd length, and not rows x columns pixels
    ds.save_as(series["files"][2])
    assert_refused(tmp_path / "s", DicomError, f"pixel data of {series['files'][2].name}", "damaged")


def test_truncated_header_file_in_series_is_named(tmp_path, lidc1_dir):
    files = copy_real_slices(lidc1_dir, tmp_path / "s", count=10)
    files[4].write_bytes(files[4].read_bytes()[:800])  # the header survives, the pixels are gone
    message = assert_refused(tmp_path / "s", DicomError, "1 slice(s) missing",
                             "1 file(s) in the folder could not be read at all", files[4].name)
    assert "copy or re-export the complete series" in message.lower()


# ------------------------------------------------------------------------------------------------
# Series content
# ------------------------------------------------------------------------------------------------
def test_mr_series_refused_for_ct_task(tmp_path, lidc1_dir):
    files = copy_real_slices(lidc1_dir, tmp_path / "mr", count=8)
    uid = generate_uid()
    for path in files:
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.SOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.SeriesInstanceUID = uid
        ds.save_as(path)
    assert_refused(tmp_path / "mr", DicomError, "no CT series found", "modality MR", "this task needs CT",
                   "select the CT series")
    # Without the CT requirement the same files read as an MR volume.
    image = read_image(tmp_path / "mr", require_ct=False)
    assert image.modality == "MR" and image.array.shape == (8, 512, 512)


def test_missing_middle_slice(tmp_path, lidc1_dir):
    files = copy_real_slices(lidc1_dir, tmp_path / "s")
    removed = files[len(files) // 2]
    z_before = float(pydicom.dcmread(files[len(files) // 2 - 1]).ImagePositionPatient[2])
    z_after = float(pydicom.dcmread(files[len(files) // 2 + 1]).ImagePositionPatient[2])
    removed.unlink()
    assert_refused(tmp_path / "s", DicomError, "the series is incomplete", "slice gap of 5 mm",
                   f"between z={z_before:.3f} and z={z_after:.3f} mm", "series spacing is 2.5 mm",
                   "1 slice(s) missing", "tolerance 0.025 mm", "re-export the complete series")


def test_duplicated_slice(tmp_path, lidc1_dir):
    files = copy_real_slices(lidc1_dir, tmp_path / "s", count=10)
    ds = pydicom.dcmread(files[3])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(tmp_path / "s" / "copy_of_slice.dcm")
    z = float(ds.ImagePositionPatient[2])
    message = assert_refused(tmp_path / "s", DicomError, "share the same position", f"{z:.3f} mm",
                             "remove duplicated files")
    assert "copy_of_slice.dcm" in message and files[3].name in message


def test_non_uniform_spacing(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    uid, study = generate_uid(), generate_uid()
    raw = raw_slices(6)
    for k, z in enumerate([0.0, 2.0, 4.0, 7.0, 9.0, 11.0]):  # one 3 mm gap: not a whole missing slice
        make_slice(folder / f"{k}.dcm", raw[k], (0.0, 0.0, z), series_uid=uid, study_uid=study)
    assert_refused(folder, DicomError, "slice spacing is not uniform", "slice gap of 3 mm",
                   "series spacing is 2 mm", "resample")


@pytest.mark.parametrize("keyword, value, shown", [
    ("PixelSpacing", ["0.9", "0.9"], "PixelSpacing is [0.7, 0.6] in 5 file(s), [0.9, 0.9] in 1 file(s)"),
    ("ImageOrientationPatient", ["1", "0", "0", "0", "0.8", "0.6"], "ImageOrientationPatient is"),
])
def test_mixed_geometry_in_series(tmp_path, keyword, value, shown):
    series = make_series(tmp_path / "s", n=6)
    ds = pydicom.dcmread(series["files"][3])
    setattr(ds, keyword, value)
    ds.save_as(series["files"][3])
    assert_refused(tmp_path / "s", DicomError, "mixes images of different geometry", shown,
                   series["files"][3].name, "select a series with a single geometry")


def test_mixed_matrix_size_in_series(tmp_path):
    series = make_series(tmp_path / "s", n=6)
    odd = raw_slices(1, seed=9)[0][:, :10]
    make_slice(series["files"][2], odd, (-10.0, -20.0, 34.0), series_uid=series["uid"],
               study_uid=series["study_uid"])
    assert_refused(tmp_path / "s", DicomError, "mixes images of different geometry",
                   "Columns is 24 in 5 file(s), 10 in 1 file(s)")


def test_single_slice_series_is_2d(tmp_path):
    series = make_series(tmp_path / "s", n=1)
    for path in (tmp_path / "s", series["files"][0]):
        assert_refused(path, DicomError, "only one slice", "2D image", "give a whole CT series")


def test_2d_nifti(tmp_path):
    nib.save(nib.Nifti1Image(np.arange(64, dtype=np.int16).reshape(8, 8), np.eye(4)), tmp_path / "flat.nii.gz")
    assert_refused(tmp_path / "flat.nii.gz", InputError, "2D image", "not a single slice")


def test_zero_pixel_spacing_in_dicom(tmp_path):
    make_series(tmp_path / "s", n=6, pixel_spacing=(0.0, 0.7))
    assert_refused(tmp_path / "s", DicomError, "PixelSpacing is [0, 0.7] mm", "must be positive")


def test_absurd_spacing_in_volume_file(tmp_path):
    array = np.random.default_rng(0).integers(-1000, 1000, size=(10, 12, 12)).astype(np.int16)
    write_nifti(tmp_path / "huge.nii.gz", array, spacing=(1000.0, 1000.0, 2.5))
    assert_refused(tmp_path / "huge.nii.gz", InputError, "voxel spacing along i is 1000 mm",
                   "outside the plausible range", "millimetres")
    header = b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementSpacing = 0 1 1\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    (tmp_path / "zero.mha").write_bytes(header + np.arange(64, dtype="<i2").tobytes())
    assert_refused(tmp_path / "zero.mha", InputError, "cannot read zero.mha", "spacing")


def test_constant_and_flat_volumes(tmp_path):
    write_nifti(tmp_path / "constant.nii.gz", np.full((10, 12, 12), -1000, np.int16))
    assert_refused(tmp_path / "constant.nii.gz", InputError, "the volume is constant (every voxel is -1000)")
    write_nifti(tmp_path / "thin.nii.gz", np.zeros((1, 12, 12), np.int16) + np.arange(12, dtype=np.int16))
    assert_refused(tmp_path / "thin.nii.gz", InputError, "empty or flat")


def test_non_finite_values(tmp_path):
    array = np.random.default_rng(0).normal(0, 300, size=(10, 12, 12)).astype(np.float32)
    array[3, 4, 5] = np.nan
    array[6, 1, 1] = np.inf
    write_nifti(tmp_path / "nan.nii.gz", array)
    assert_refused(tmp_path / "nan.nii.gz", InputError, "2 non-finite voxel value(s)", "re-export")


def test_write_errors_leave_nothing(tmp_path):
    image = Image(array=np.zeros((3, 4, 5), np.int16), spacing=(1, 1, 1))
    with pytest.raises(UnsupportedFormatError, match="unsupported extension '.tiff'"):
        write_image(image, tmp_path / "out.tiff")
    assert list(tmp_path.iterdir()) == []
