"""Builders of small synthetic DICOM CT/MR series with known voxels, shared by the I/O tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

ROWS, COLUMNS = 20, 24
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def raw_slices(n: int, seed: int = 0) -> np.ndarray:
    """Distinct raw stored values per slice, shape (n, ROWS, COLUMNS), int16."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3000, size=(n, ROWS, COLUMNS)).astype(np.int16)


def make_slice(path: Path, raw: np.ndarray, ipp, *, iop=AXIAL, series_uid: str, study_uid: str,
               modality: str = "CT", instance: int = 1, pixel_spacing=(0.7, 0.6), slope: float = 1.0,
               intercept: float = -1024.0, image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
               description: str = "", series_number: int = 1) -> Path:
    """Write one single-frame slice (Explicit VR Little Endian, signed 16-bit) with pydicom."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.Modality = modality
    ds.ImageType = list(image_type)
    ds.Manufacturer = "Synthetic"
    ds.KVP = 100
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "PHANTOM"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
    ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    ds.SliceThickness = 2.0
    ds.Rows, ds.Columns = raw.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = np.ascontiguousarray(raw, dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def make_series(folder: Path, n: int = 8, *, spacing: float = 2.0, iop=AXIAL, origin=(-10.0, -20.0, 30.0),
                shear=(0.0, 0.0, 0.0), modality: str = "CT", series_uid: str | None = None,
                study_uid: str | None = None, seed: int = 0, shuffle_names: bool = True,
                **slice_kwargs) -> dict:
    """Write an n-slice series; return what a correct reader must produce, computed independently.

    Slice k is at origin + k * spacing * normal (+ k * shear, for a gantry-tilted stack).
    InstanceNumbers are assigned in a scrambled order and file names are shuffled, so a reader
    that sorts by either gets the volume wrong.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    raw = raw_slices(n, seed)
    rng = np.random.default_rng(seed + 1)
    instance_numbers = rng.permutation(n) + 1
    names = rng.permutation(n) if shuffle_names else np.arange(n)
    files = []
    for k in range(n):
        ipp = np.array(origin) + k * spacing * normal + k * np.array(shear)
        files.append(make_slice(folder / f"{series_uid[-6:]}_{names[k]:04d}.dcm", raw[k], ipp, iop=iop,
                                series_uid=series_uid, study_uid=study_uid, modality=modality,
                                instance=int(instance_numbers[k]), **slice_kwargs))
    slope = slice_kwargs.get("slope", 1.0)
    intercept = slice_kwargs.get("intercept", -1024.0)
    return {"uid": series_uid, "study_uid": study_uid, "files": files, "raw": raw,
            "hu": raw.astype(np.float64) * slope + intercept, "normal": normal, "origin": np.array(origin)}
