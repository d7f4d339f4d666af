"""DICOM series reading: series choice, slice order, HU rescale, geometry (axial, oblique), real CT.

Synthetic series are built with pydicom in tmp_path (small 24x20 images with known raw values), so
every expected voxel and position is computed independently of the reader. Real-data tests use
the LIDC-IDRI fixtures (skipped with a reason when ../shared is absent) and check the reader
against the DICOM tags read with pydicom and against SimpleITK's ImageSeriesReader.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from CardiacAI.errors import DicomError, OperationCancelled
from CardiacAI.io import list_dicom_series, read_image
from CardiacAI.io import dicom as dicom_io

from dicom_builders import COLUMNS, ROWS, make_series, make_slice, raw_slices


# ------------------------------------------------------------------------------------------------
# Synthetic series
# ------------------------------------------------------------------------------------------------
def test_slices_sorted_by_position_not_instance_number(tmp_path):
    series = make_series(tmp_path / "s", n=9, spacing=2.5)
    image = read_image(tmp_path / "s")
    assert image.array.shape == (9, ROWS, COLUMNS)
    np.testing.assert_array_equal(image.array, series["hu"])
    assert image.spacing == pytest.approx((0.6, 0.7, 2.5))  # PixelSpacing is [row, column] spacing
    assert image.origin == pytest.approx(tuple(series["origin"]))
    # source_files lists the files in slice order: each file's IPP is voxel (0, 0, k)'s position.
    for k, name in enumerate(image.metadata["source_files"]):
        ipp = np.array([float(v) for v in pydicom.dcmread(name).ImagePositionPatient])
        np.testing.assert_allclose((image.ijk_to_lps @ [0, 0, k, 1])[:3], ipp, atol=1e-6)


def test_slices_sorted_along_normal_when_stack_runs_head_to_feet(tmp_path):
    # Positions decreasing in z as the raw index grows: the reader must still order by z.
    series = make_series(tmp_path / "s", n=6, spacing=-3.0, origin=(0.0, 0.0, 100.0))
    image = read_image(tmp_path / "s")
    np.testing.assert_array_equal(image.array, series["hu"][::-1])
    assert image.origin == pytest.approx((0.0, 0.0, 85.0))
    assert image.spacing[2] == pytest.approx(3.0)


def test_rescale_to_int16_hu(tmp_path):
    series = make_series(tmp_path / "s", slope=1.0, intercept=-1024.0)
    image = read_image(tmp_path / "s")
    assert image.array.dtype == np.int16
    np.testing.assert_array_equal(image.array, series["raw"].astype(np.int32) - 1024)
    assert image.metadata["rescale_slope"] == 1.0 and image.metadata["rescale_intercept"] == -1024.0


def test_non_integer_rescale_gives_float32(tmp_path):
    series = make_series(tmp_path / "s", slope=0.5, intercept=-1000.25)
    image = read_image(tmp_path / "s")
    assert image.array.dtype == np.float32
    np.testing.assert_allclose(image.array, series["hu"], rtol=0, atol=1e-3)


def test_hu_beyond_int16_gives_float32(tmp_path):
    series = make_series(tmp_path / "s", slope=20.0, intercept=0.0)  # raw up to 3000 -> 60000 HU
    image = read_image(tmp_path / "s", require_ct=False)
    assert image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array, series["hu"].astype(np.float32))


def test_rescale_applied_per_slice(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    uid, study = generate_uid(), generate_uid()
    raw = raw_slices(6)
    intercepts = [-1024, -1000, -1024, -1000, -1024, -1000]
    for k in range(6):
        make_slice(folder / f"{k}.dcm", raw[k], (0, 0, 2.0 * k), series_uid=uid, study_uid=study,
                   intercept=intercepts[k])
    image = read_image(folder)
    np.testing.assert_array_equal(image.array, raw.astype(np.int32) + np.array(intercepts)[:, None, None])
    assert image.metadata["rescale_intercept"] == [-1024.0, -1000.0]


def test_oblique_orientation_matches_positions_and_simpleitk(tmp_path):
    import SimpleITK as sitk

    angle = np.radians(25.0)
    # Row cosine tilted in the axial plane, column cosine tilted towards the head: a double-oblique plane.
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    col = np.array([-np.sin(angle) * np.cos(0.3), np.cos(angle) * np.cos(0.3), np.sin(0.3)])
    iop = tuple(row) + tuple(col)
    series = make_series(tmp_path / "s", n=7, spacing=1.5, iop=iop, origin=(5.0, -7.0, 12.0))
    image = read_image(tmp_path / "s")
    np.testing.assert_allclose(image.direction[:, 0], row, atol=1e-6)
    np.testing.assert_allclose(image.direction[:, 1], col, atol=1e-6)
    np.testing.assert_allclose(image.direction[:, 2], np.cross(row, col), atol=1e-6)
    np.testing.assert_array_equal(image.array, series["hu"])
    # Voxel (i, j, k) lies at IPP_k + i * col_spacing * row + j * row_spacing * col (PS3.3 C.7.6.2.1.1).
    ipp_last = series["origin"] + 6 * 1.5 * series["normal"]
    expected = ipp_last + 3 * 0.6 * row + 2 * 0.7 * col
    np.testing.assert_allclose((image.ijk_to_lps @ [3, 2, 6, 1])[:3], expected, atol=1e-5)

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "s")))
    reference = reader.Execute()
    np.testing.assert_allclose(image.origin, reference.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(image.spacing, reference.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(image.direction.ravel(), reference.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(image.array, sitk.GetArrayFromImage(reference))


def test_gantry_tilt_is_refused_with_the_angle(tmp_path):
    tilt = np.radians(15.0)
    make_series(tmp_path / "s", n=8, spacing=2.0, shear=(0.0, 2.0 * np.tan(tilt), 0.0))
    with pytest.raises(DicomError) as err:
        read_image(tmp_path / "s")
    message = str(err.value)
    assert "gantry-tilted by 15.00 degrees" in message
    assert "resample" in message.lower() and "dcm2niix" in message


def test_single_file_reads_its_whole_series(tmp_path):
    series = make_series(tmp_path / "s", n=8)
    make_series(tmp_path / "s", n=10, seed=5)  # another series in the same folder
    image = read_image(series["files"][3])
    assert image.metadata["series_instance_uid"] == series["uid"]
    np.testing.assert_array_equal(image.array, series["hu"])


def test_ct_series_chosen_among_localizer_mr_and_derived(tmp_path, caplog):
    folder = tmp_path / "study"
    study = generate_uid()
    volume = make_series(folder / "a", n=10, study_uid=study, description="Chest 2.0")
    derived = make_series(folder / "b", n=12, study_uid=study, seed=3,
                          image_type=("DERIVED", "SECONDARY", "REFORMATTED"), description="MIP")
    scout = make_series(folder / "c", n=2, study_uid=study, seed=4,
                        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), description="Scout")
    mr = make_series(folder / "d", n=20, study_uid=study, seed=5, modality="MR", description="T1")

    infos = {s.uid: s for s in list_dicom_series(folder)}
    assert set(infos) == {volume["uid"], derived["uid"], scout["uid"], mr["uid"]}
    assert infos[scout["uid"]].is_localizer and not infos[volume["uid"]].is_localizer
    assert infos[mr["uid"]].modality == "MR" and infos[mr["uid"]].number_of_slices == 20
    assert infos[volume["uid"]].is_original_primary_axial and not infos[derived["uid"]].is_original_primary_axial

    with caplog.at_level(logging.INFO, logger="CardiacAI.io.dicom"):
        image = read_image(folder)
    assert image.metadata["series_instance_uid"] == volume["uid"]
    np.testing.assert_array_equal(image.array, volume["hu"])
    reason = image.metadata["selection_reason"]
    assert volume["uid"] in reason and "modality CT" in reason and "ORIGINAL/PRIMARY/AXIAL" in reason
    assert "not a localizer" in reason
    assert any(volume["uid"] in record.getMessage() for record in caplog.records)


def test_most_slices_wins_between_equal_series(tmp_path):
    study = generate_uid()
    make_series(tmp_path / "x" / "a", n=6, study_uid=study)
    bigger = make_series(tmp_path / "x" / "b", n=9, study_uid=study, seed=2)
    image = read_image(tmp_path / "x")
    assert image.metadata["series_instance_uid"] == bigger["uid"]
    assert "most slices (9 vs 6)" in image.metadata["selection_reason"]


def test_explicit_series_uid(tmp_path):
    study = generate_uid()
    make_series(tmp_path / "x" / "a", n=9, study_uid=study)
    smaller = make_series(tmp_path / "x" / "b", n=6, study_uid=study, seed=2)
    image = read_image(tmp_path / "x", series_uid=smaller["uid"])
    np.testing.assert_array_equal(image.array, smaller["hu"])
    with pytest.raises(DicomError) as err:
        read_image(tmp_path / "x", series_uid="1.2.3.4.5")
    assert "1.2.3.4.5 is not in the folder" in str(err.value)
    assert smaller["uid"] in str(err.value)  # the available series are listed


def test_only_localizers_is_refused(tmp_path):
    study = generate_uid()
    make_series(tmp_path / "x" / "a", n=2, study_uid=study, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    make_series(tmp_path / "x" / "b", n=1, study_uid=study, seed=3, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    with pytest.raises(DicomError, match="localizer/scout"):
        read_image(tmp_path / "x")


def test_progress_reported_and_cancellable(tmp_path):
    make_series(tmp_path / "s", n=8)
    fractions = []
    read_image(tmp_path / "s", progress=lambda f, msg: fractions.append(f))
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)

    def cancel(fraction, message):
        if fraction >= 0.5:
            raise OperationCancelled("reading cancelled by the user")

    with pytest.raises(OperationCancelled):
        read_image(tmp_path / "s", progress=cancel)


def _jpeg_lossless_copy(source: Path, dest: Path) -> None:
    """Copy a slice re-encoded as JPEG Lossless SV1 (encoded by SimpleITK's GDCM)."""
    import SimpleITK as sitk

    ds = pydicom.dcmread(source)
    scratch = dest.with_suffix(".gdcm.dcm")
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(scratch))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    writer.Execute(sitk.GetImageFromArray(ds.pixel_array[None]))
    encoded = pydicom.dcmread(scratch)
    scratch.unlink()
    assert encoded.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1
    ds.file_meta.TransferSyntaxUID = encoded.file_meta.TransferSyntaxUID
    ds.PixelData = encoded.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(dest, enforce_file_format=True)


def test_jpeg_lossless_without_pydicom_decoder(tmp_path, monkeypatch):
    """JPEG Lossless (the usual CT compression): decoded through GDCM when pydicom has no decoder;
    with no decoder at all, the error names the transfer syntax and what to install."""
    series = make_series(tmp_path / "plain", n=6)
    compressed = tmp_path / "jpeg"
    compressed.mkdir()
    for path in series["files"]:
        _jpeg_lossless_copy(path, compressed / path.name)
    image = read_image(compressed)
    np.testing.assert_array_equal(image.array, series["hu"])

    monkeypatch.setattr(dicom_io, "_fallback_decoders", [])
    with pytest.raises(DicomError) as err:
        read_image(compressed)
    message = str(err.value)
    assert "JPEG Lossless" in message and "no available decoder" in message
    assert "pylibjpeg" in message and "gdcm" in message and "pip install" in message


# ------------------------------------------------------------------------------------------------
# Real CT (LIDC-IDRI)
# ------------------------------------------------------------------------------------------------
def _headers(folder: Path) -> list:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]


def _expected_geometry(headers):
    """Spacing, origin, direction of a series computed from its tags with pydicom alone."""
    iop = np.array([float(v) for v in headers[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    ipps = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    along = np.sort(ipps @ normal)
    first = ipps[np.argmin(ipps @ normal)]
    row_spacing, col_spacing = (float(v) for v in headers[0].PixelSpacing)
    spacing = (col_spacing, row_spacing, float(np.mean(np.diff(along))))
    return spacing, first, np.column_stack([iop[:3], iop[3:], normal])


def test_lidc1_geometry_and_metadata_match_tags(lidc1_dir, lidc1_image):
    headers = _headers(lidc1_dir)
    spacing, first_ipp, direction = _expected_geometry(headers)
    image = lidc1_image
    assert image.array.shape == (len(headers), int(headers[0].Rows), int(headers[0].Columns))
    assert image.array.shape == (133, 512, 512)
    assert image.array.dtype == np.int16
    np.testing.assert_allclose(image.spacing, spacing, atol=1e-6)
    assert image.spacing == pytest.approx((0.703, 0.703, 2.5), abs=1e-3)
    np.testing.assert_allclose(image.origin, first_ipp, atol=1e-6)
    np.testing.assert_allclose(image.direction, direction, atol=1e-6)
    md = image.metadata
    assert image.modality == "CT" and md["modality"] == "CT"
    assert md["kvp"] == float(headers[0].KVP) == 120.0
    assert md["manufacturer"].startswith("GE")
    assert md["series_instance_uid"] == headers[0].SeriesInstanceUID
    assert md["study_instance_uid"] == headers[0].StudyInstanceUID
    assert md["contrast_agent"] == str(headers[0].ContrastBolusAgent)
    assert md["convolution_kernel"] == str(headers[0].ConvolutionKernel)
    assert md["slice_thickness"] == float(headers[0].SliceThickness)
    assert md["number_of_files"] == 133
    assert md["rescale_intercept"] == float(headers[0].RescaleIntercept)


def test_lidc1_hu_values(lidc1_dir, lidc1_image):
    array = lidc1_image.array
    # Air (outside the body, lungs) peaks at about -1000 HU; bone and contrast exceed 1000 HU.
    values, counts = np.unique(array[(array > -1200) & (array < -800)], return_counts=True)
    air_peak = values[np.argmax(counts)]
    assert -1050 <= air_peak <= -950
    assert array.max() > 1000
    # One slice checked voxel by voxel against pydicom + the rescale tags.
    ds = pydicom.dcmread(lidc1_image.metadata["source_files"][60])
    expected = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(array[60], expected)


def test_lidc1_matches_simpleitk_series_reader(lidc1_dir, lidc1_image):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(lidc1_dir)))
    reference = reader.Execute()
    np.testing.assert_array_equal(lidc1_image.array, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(lidc1_image.spacing, reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(lidc1_image.origin, reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(lidc1_image.direction.ravel(), reference.GetDirection(), atol=1e-6)


def test_lidc2_deflated_geometry(lidc2_dir, lidc2_image):
    headers = _headers(lidc2_dir)
    assert headers[0].file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    spacing, first_ipp, direction = _expected_geometry(headers)
    assert lidc2_image.array.shape == (261, 512, 512) == (len(headers), headers[0].Rows, headers[0].Columns)
    np.testing.assert_allclose(lidc2_image.spacing, spacing, atol=1e-6)
    assert lidc2_image.spacing == pytest.approx((0.682, 0.682, 1.25), abs=1e-3)
    np.testing.assert_allclose(lidc2_image.origin, first_ipp, atol=1e-6)
    np.testing.assert_allclose(lidc2_image.direction, direction, atol=1e-6)
    assert lidc2_image.metadata["transfer_syntax"] == "Deflated Explicit VR Little Endian"
    assert lidc2_image.metadata["contrast_agent"] == ""  # non-contrast scan
