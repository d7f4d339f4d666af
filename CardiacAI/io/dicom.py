"""Reading a CT series from DICOM files into an :class:`~CardiacAI.image.Image` (HU, LPS).

What this module does, in order:

1. **Scan** a folder (recursively) and read every file's header with pydicom, deferring the pixel
   data (``defer_size``) so that only the selected series' pixels are ever read.
2. **Group** the image files by SeriesInstanceUID (:func:`list_dicom_series`) and **pick** the CT
   series (:func:`choose_series`): modality CT first, then not a localizer/scout, then image type
   ORIGINAL/PRIMARY/AXIAL, then most slices; the reason is logged and kept in the metadata.
3. **Check the geometry** (:func:`slice_geometry`): rows, columns, pixel spacing and orientation
   identical in every file; slices sorted by their position along the slice normal
   (ImagePositionPatient · normal, DICOM PS3.3 C.7.6.2.1.1), never by InstanceNumber; uniform
   spacing; missing or duplicated slices and gantry-tilted (sheared) stacks refused.
4. **Read the pixels** and apply RescaleSlope/RescaleIntercept (PS3.3 C.11.1.1.2) slice by slice,
   giving HU stored as int16 when every value is an integer in the int16 range, float32 otherwise.

The grid follows ITK's convention (what SimpleITK's ``ImageSeriesReader`` produces): direction
columns are [row cosine, column cosine, slice normal] from ImageOrientationPatient, the origin is
the ImagePositionPatient of the first slice along the normal, and the slice spacing is the distance
between neighbouring slice positions (not SliceThickness, which may differ with overlapping
reconstructions).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DicomError, InputError, UnsupportedFormatError
from ..image import Image

log = logging.getLogger(__name__)

#: ``progress(fraction, message)``: fraction in [0, 1]. Raise OperationCancelled in it to stop.
ProgressCallback = Callable[[float, str], Any]

#: Series with fewer slices than this are treated like localizers/scouts when choosing a series.
MIN_VOLUME_SLICES = 5

#: Slice spacing tolerance: a gap between neighbouring slices may differ from the series spacing by
#: at most max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_FRACTION x spacing) before it is called
#: missing slices or non-uniform spacing. 0.01 mm absorbs the rounding of positions in the header.
SPACING_TOLERANCE_MM = 0.01
SPACING_TOLERANCE_FRACTION = 0.01

#: Two slices closer than this along the normal (mm) are at the same position (duplicates).
DUPLICATE_TOLERANCE_MM = 0.001

#: Tolerance on direction cosines (ImageOrientationPatient) between files of one series, and on
#: pixel spacing (mm); headers print them with 6 decimals or fewer.
ORIENTATION_TOLERANCE = 1e-4
PIXEL_SPACING_TOLERANCE_MM = 1e-4

#: Largest in-plane drift of slice positions (as a fraction of the in-plane pixel size) accepted
#: before the stack is called sheared (gantry tilt): beyond half a voxel, a regular grid would
#: misplace the far slices by more than the voxel size can hide.
MAX_SHEAR_VOXELS = 0.5

#: Header read with the pixel data deferred: elements larger than this are read only when used.
_DEFER_SIZE = "4 KB"

_SKIP_NAMES = {"DICOMDIR"}


@dataclasses.dataclass
class SeriesInfo:
    """One DICOM series (one SeriesInstanceUID) found in a folder.

    Attributes
    ----------
    uid: SeriesInstanceUID.
    study_uid: StudyInstanceUID.
    modality: DICOM Modality ("CT", "MR", ...).
    description: SeriesDescription ("" when absent).
    series_number: SeriesNumber or None.
    number_of_files: image files (with pixel data) in the series.
    number_of_slices: distinct ImagePositionPatient values (< number_of_files when positions repeat).
    rows, columns: image matrix of the first file (pixels).
    image_type: ImageType values, upper case (e.g. ("ORIGINAL", "PRIMARY", "AXIAL")).
    is_localizer: ImageType says LOCALIZER/SCOUT, or the series has fewer than
        MIN_VOLUME_SLICES slices.
    manufacturer: Manufacturer ("" when absent).
    files: the image files of the series, in scan order.
    """

    uid: str
    study_uid: str
    modality: str
    description: str
    series_number: int | None
    number_of_files: int
    number_of_slices: int
    rows: int
    columns: int
    image_type: tuple[str, ...]
    is_localizer: bool
    manufacturer: str
    files: tuple[Path, ...] = dataclasses.field(repr=False)

    @property
    def is_original_primary_axial(self) -> bool:
        """ImageType contains ORIGINAL, PRIMARY and AXIAL (a reconstructed acquisition volume)."""
        return {"ORIGINAL", "PRIMARY", "AXIAL"} <= set(self.image_type)

    def summary(self) -> str:
        """One line for messages: UID, modality, description, slices, size, image type."""
        parts = [self.modality or "no modality"]
        if self.description:
            parts.append(f"'{self.description}'")
        parts.append(f"{self.number_of_slices} slice(s) in {self.number_of_files} file(s)")
        parts.append(f"{self.columns}x{self.rows}")
        if self.image_type:
            parts.append("\\".join(self.image_type))
        if self.is_localizer:
            parts.append("localizer")
        return f"{self.uid} ({', '.join(parts)})"


@dataclasses.dataclass
class _ScanResult:
    """Image datasets of a folder grouped by series, plus what could not be used."""

    datasets: dict[str, list[Any]]  # SeriesInstanceUID -> pydicom datasets (pixels deferred)
    files_seen: int
    not_dicom: list[Path]
    damaged: list[tuple[Path, str]]
    without_pixels: int


# ------------------------------------------------------------------------------------------------
# Scanning
# ------------------------------------------------------------------------------------------------
def _candidate_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    files = [p for p in pattern if p.is_file() and p.name not in _SKIP_NAMES]
    return sorted(files)


def _read_header(path: Path):
    """pydicom dataset with the pixel data deferred. Raises InvalidDicomError for non-DICOM files."""
    import pydicom

    return pydicom.dcmread(path, defer_size=_DEFER_SIZE)


def _scan(files: Sequence[Path], progress: ProgressCallback | None, progress_span=(0.0, 0.5)) -> _ScanResult:
    from pydicom.errors import InvalidDicomError

    result = _ScanResult(datasets={}, files_seen=len(files), not_dicom=[], damaged=[], without_pixels=0)
    lo, hi = progress_span
    for n, path in enumerate(files):
        if progress is not None and n % 16 == 0:
            progress(lo + (hi - lo) * n / max(len(files), 1), f"reading DICOM headers ({n}/{len(files)})")
        try:
            ds = _read_header(path)
        except InvalidDicomError:
            result.not_dicom.append(path)
            continue
        except Exception as exc:  # truncated or garbled header: pydicom raises many kinds
            result.damaged.append((path, f"{type(exc).__name__}: {exc}"))
            continue
        if not _has_pixels(ds):
            if _is_image_storage(ds):
                # An image object without its pixels: the file was cut short.
                result.damaged.append((path, "an image object without pixel data (truncated file)"))
            else:
                result.without_pixels += 1  # structured reports, presentation states, DICOMDIR, ...
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:
            result.damaged.append((path, "no SeriesInstanceUID"))
            continue
        ds.filename = str(path)  # keep the path even for datasets read from a buffer
        result.datasets.setdefault(uid, []).append(ds)
    return result


def _has_pixels(ds) -> bool:
    return "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


def _is_image_storage(ds) -> bool:
    """True when the SOP class is an image storage class (CT Image Storage, MR Image Storage...)."""
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "MediaStorageSOPClassUID", None) if meta is not None else None
    uid = uid or ds.get("SOPClassUID", None)
    return uid is not None and "Image Storage" in getattr(uid, "name", "")


def _image_type(ds) -> tuple[str, ...]:
    value = ds.get("ImageType", None)
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split("\\")
    return tuple(str(v).strip().upper() for v in value)


def _position_key(ds) -> tuple[float, ...] | None:
    ipp = ds.get("ImagePositionPatient", None)
    if ipp is None or len(ipp) != 3:
        return None
    return tuple(round(float(v), 3) for v in ipp)


def _series_info(uid: str, datasets: Sequence[Any]) -> SeriesInfo:
    first = datasets[0]
    image_type = _image_type(first)
    positions = {_position_key(ds) for ds in datasets}
    positions.discard(None)
    n_slices = len(positions) if positions else len(datasets)
    localizer = bool({"LOCALIZER", "SCOUT", "TOPOGRAM"} & set(image_type)) or n_slices < MIN_VOLUME_SLICES
    number = first.get("SeriesNumber", None)
    return SeriesInfo(
        uid=uid,
        study_uid=str(first.get("StudyInstanceUID", "") or ""),
        modality=str(first.get("Modality", "") or "").upper(),
        description=str(first.get("SeriesDescription", "") or ""),
        series_number=int(number) if number not in (None, "") else None,
        number_of_files=len(datasets),
        number_of_slices=n_slices,
        rows=int(first.get("Rows", 0) or 0),
        columns=int(first.get("Columns", 0) or 0),
        image_type=image_type,
        is_localizer=localizer,
        manufacturer=str(first.get("Manufacturer", "") or ""),
        files=tuple(Path(ds.filename) for ds in datasets),
    )


def _check_folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder} does not exist", "check the path (a DICOM folder, DICOM file or volume file)")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder", "give the folder holding the DICOM files")
    return folder


def list_dicom_series(folder: str | os.PathLike, *, recursive: bool = True) -> list[SeriesInfo]:
    """List the DICOM image series in a folder, one entry per SeriesInstanceUID.

    Reads headers only (pixel data deferred). Files that are not DICOM, or DICOM objects without
    pixel data (reports, DICOMDIR), are ignored.

    Parameters
    ----------
    folder: folder searched (recursively by default).

    Returns
    -------
    list of SeriesInfo, ordered by (StudyInstanceUID, SeriesNumber, UID). Empty when no DICOM
    image is found.

    Raises
    ------
    InputError: the folder does not exist or is not a folder.
    """
    folder = _check_folder(Path(folder))
    scan = _scan(_candidate_files(folder, recursive), progress=None)
    return _sorted_infos(scan)


def _sorted_infos(scan: _ScanResult) -> list[SeriesInfo]:
    infos = [_series_info(uid, dss) for uid, dss in scan.datasets.items()]
    infos.sort(key=lambda s: (s.study_uid, s.series_number if s.series_number is not None else -1, s.uid))
    return infos


# ------------------------------------------------------------------------------------------------
# Choosing the series
# ------------------------------------------------------------------------------------------------
def _rank(info: SeriesInfo) -> tuple:
    return (info.modality == "CT", not info.is_localizer, info.is_original_primary_axial, info.number_of_slices)


def choose_series(series: Sequence[SeriesInfo], *, series_uid: str | None = None, require_ct: bool = True) -> tuple[SeriesInfo, str]:
    """Pick the series to read and say why.

    Order of preference: modality CT; not a localizer/scout (ImageType LOCALIZER, or fewer than
    MIN_VOLUME_SLICES slices); ImageType ORIGINAL/PRIMARY/AXIAL; most slices. ``series_uid``
    overrides the choice.

    Returns
    -------
    (chosen SeriesInfo, reason): the reason is one sentence naming the series and why it won.

    Raises
    ------
    DicomError: ``series`` is empty; ``series_uid`` is not among them (the message lists those
        available); ``require_ct`` and no series is CT; every series is a localizer.
    """
    if not series:
        raise DicomError("no DICOM image series found", "give the folder that holds the CT series files")
    listing = "; ".join(s.summary() for s in series)
    if series_uid is not None:
        for info in series:
            if info.uid == series_uid:
                return info, f"series {info.uid} was requested explicitly"
        raise DicomError(
            f"the requested series {series_uid} is not in the folder; available series: {listing}",
            "pass one of the listed SeriesInstanceUIDs, or none to choose the CT series automatically",
        )
    if require_ct and not any(s.modality == "CT" for s in series):
        found = ", ".join(sorted({s.modality or "no modality" for s in series}))
        raise DicomError(
            f"no CT series found (found modality {found}: {listing}), but this task needs CT",
            "select the CT series of the study (for MR use the CardiacFusion module)",
        )
    ranked = sorted(series, key=_rank, reverse=True)
    best = ranked[0]
    if best.is_localizer and len(series) > 1:
        which = "CT series" if require_ct else "series"
        raise DicomError(
            f"every {which} in the folder is a localizer/scout or has fewer than {MIN_VOLUME_SLICES} "
            f"slices: {listing}",
            "export the reconstructed axial CT series, not only the scout images",
        )
    if len(series) == 1:
        return best, f"series {best.uid} is the only image series in the folder"
    reasons = []
    others = ranked[1:]
    if best.modality == "CT" and any(o.modality != "CT" for o in others):
        reasons.append("modality CT")
    if not best.is_localizer and any(o.is_localizer for o in others):
        reasons.append("not a localizer/scout")
    if best.is_original_primary_axial and any(not o.is_original_primary_axial for o in others):
        reasons.append("image type ORIGINAL/PRIMARY/AXIAL")
    runner_up = others[0]
    if _rank(runner_up)[:3] == _rank(best)[:3]:
        reasons.append(f"most slices ({best.number_of_slices} vs {runner_up.number_of_slices})")
    why = ", ".join(reasons) or "highest preference"
    others_text = "; ".join(o.summary() for o in others)
    return best, (
        f"chose series {best.summary()} out of {len(series)} series because of: {why}; "
        f"not chosen: {others_text}"
    )


# ------------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SliceGeometry:
    """Geometry of a checked slice stack.

    Attributes
    ----------
    order: indices into the input datasets, sorted along the slice normal (k = 0 first).
    spacing: (i, j, k) voxel size in mm; k is the distance between neighbouring slice positions.
    origin: LPS position (mm) of the first slice's first pixel centre.
    direction: (3, 3) direction cosines, columns = [row cosine, column cosine, normal] (LPS).
    rows, columns: image matrix.
    """

    order: list[int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    rows: int
    columns: int


def _name(ds) -> str:
    return Path(str(getattr(ds, "filename", "") or "?")).name


def _required(ds, keyword: str):
    value = ds.get(keyword, None)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise DicomError(
            f"file {_name(ds)} has no {keyword}, which is needed to place the slice in 3D",
            "re-export the series from the scanner or PACS; the file may be damaged or not a "
            "cross-sectional image",
        )
    return value


def _consistent(datasets: Sequence[Any], keyword: str, values: Sequence[Any], same: Callable[[Any, Any], bool]):
    """Raise DicomError when the values of ``keyword`` are not all the same as the first one."""
    first = values[0]
    different = [i for i, v in enumerate(values) if not same(v, first)]
    if different:
        counts = Counter(_fmt(v) for v in values)
        listing = ", ".join(f"{val} in {n} file(s)" for val, n in counts.most_common())
        example = _name(datasets[different[0]])
        raise DicomError(
            f"the series mixes images of different geometry: {keyword} is {listing} "
            f"(e.g. {_name(datasets[0])} vs {example})",
            "the series holds more than one image stack; select a series with a single geometry, or "
            "split it (e.g. in Slicer's DICOM module or with dcm2niix)",
        )


def _fmt(value) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(f"{float(v):g}" for v in value) + "]"
    return str(value)


def slice_geometry(datasets: Sequence[Any]) -> SliceGeometry:
    """Check that the slices form one regular 3D grid and compute that grid.

    Parameters
    ----------
    datasets: pydicom datasets of one series (any order).

    Returns
    -------
    SliceGeometry (LPS, mm).

    Raises
    ------
    DicomError: a file lacks ImagePositionPatient/ImageOrientationPatient/PixelSpacing; rows,
        columns, pixel spacing or orientation differ between files (mixed geometry); fewer than 2
        slices (a 2D image); two slices at the same position; a gap where slices are missing;
        non-uniform spacing; a sheared stack (gantry tilt).
    """
    rows = [int(_required(ds, "Rows")) for ds in datasets]
    cols = [int(_required(ds, "Columns")) for ds in datasets]
    _consistent(datasets, "Rows", rows, lambda a, b: a == b)
    _consistent(datasets, "Columns", cols, lambda a, b: a == b)
    pixel_spacing = [np.array([float(v) for v in _required(ds, "PixelSpacing")]) for ds in datasets]
    _consistent(datasets, "PixelSpacing", pixel_spacing,
                lambda a, b: a.shape == b.shape and np.allclose(a, b, atol=PIXEL_SPACING_TOLERANCE_MM))
    iops = [np.array([float(v) for v in _required(ds, "ImageOrientationPatient")]) for ds in datasets]
    _consistent(datasets, "ImageOrientationPatient", iops,
                lambda a, b: a.shape == b.shape and np.allclose(a, b, atol=ORIENTATION_TOLERANCE))
    ipps = np.array([[float(v) for v in _required(ds, "ImagePositionPatient")] for ds in datasets])
    if pixel_spacing[0].shape != (2,) or iops[0].shape != (6,) or ipps.shape[1:] != (3,):
        raise DicomError(
            f"file {_name(datasets[0])} has a malformed PixelSpacing, ImageOrientationPatient or "
            "ImagePositionPatient (wrong number of values)",
            "re-export the series from the scanner or PACS",
        )
    if np.any(pixel_spacing[0] <= 0):
        raise DicomError(
            f"PixelSpacing is {_fmt(pixel_spacing[0])} mm in {_name(datasets[0])}; it must be positive",
            "re-export the series; the header is damaged",
        )

    direction = _orthonormal_direction(iops[0], datasets[0])
    normal = direction[:, 2]
    if len(datasets) < 2:
        raise DicomError(
            f"the series has only one slice ({_name(datasets[0])}): a 2D image, not a 3D volume",
            "give a whole CT series (all slices of the axial reconstruction)",
        )
    along = ipps @ normal
    order = np.argsort(along, kind="stable")
    along_sorted = along[order]
    gaps = np.diff(along_sorted)

    duplicates = np.nonzero(gaps < DUPLICATE_TOLERANCE_MM)[0]
    if duplicates.size:
        a, b = order[duplicates[0]], order[duplicates[0] + 1]
        raise DicomError(
            f"{duplicates.size} pair(s) of slices share the same position; e.g. {_name(datasets[a])} and "
            f"{_name(datasets[b])} are both at {along_sorted[duplicates[0]]:.3f} mm along the slice normal",
            "remove duplicated files, or select one acquisition if the series mixes several "
            "(phases, echoes or repeated scans)",
        )

    spacing_k = float(np.median(gaps))
    tolerance = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_FRACTION * spacing_k)
    tolerance_text = (f"tolerance {tolerance:.3g} mm = max({SPACING_TOLERANCE_MM} mm, "
                      f"{SPACING_TOLERANCE_FRACTION:.0%} of the spacing)")
    off = np.nonzero(np.abs(gaps - spacing_k) > tolerance)[0]
    if off.size:
        problems = []
        missing_total = 0
        for g in off:
            gap = gaps[g]
            multiple = gap / spacing_k
            where = f"between z={along_sorted[g]:.3f} and z={along_sorted[g + 1]:.3f} mm"
            if round(multiple) >= 2 and abs(gap - round(multiple) * spacing_k) <= tolerance * round(multiple):
                missing = int(round(multiple)) - 1
                missing_total += missing
                problems.append(f"slice gap of {gap:.3g} mm {where} where the series spacing is "
                                f"{spacing_k:.4g} mm: {missing} slice(s) missing")
            else:
                problems.append(f"slice gap of {gap:.4g} mm {where} where the series spacing is {spacing_k:.4g} mm")
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        if missing_total:
            raise DicomError(
                f"the series is incomplete: {shown} ({tolerance_text}; z is the position along the "
                "slice normal)",
                "copy or re-export the complete series; files are missing from the folder",
            )
        raise DicomError(
            f"the slice spacing is not uniform: {shown} ({tolerance_text}; z is the position along "
            "the slice normal)",
            "resample the series to uniform spacing (e.g. Slicer's DICOM acquisition geometry "
            "regularization, or dcm2niix)",
        )

    # Sheared stack: slice positions must move along the normal only.
    first_ipp = ipps[order[0]]
    offsets = ipps[order] - first_ipp
    in_plane = offsets - np.outer(offsets @ normal, normal)
    drift = float(np.max(np.linalg.norm(in_plane, axis=1)))
    if drift > MAX_SHEAR_VOXELS * float(np.min(pixel_spacing[0])):
        last = len(order) - 1
        angle = float(np.degrees(np.arctan2(np.linalg.norm(in_plane[last]), abs(offsets[last] @ normal))))
        tag_tilt = datasets[0].get("GantryDetectorTilt", None)
        tag_text = f"; GantryDetectorTilt says {float(tag_tilt):g} degrees" if tag_tilt not in (None, "") else ""
        raise DicomError(
            f"the series is gantry-tilted by {angle:.2f} degrees: slice positions drift {drift:.2f} mm "
            f"sideways over the stack, so the slices do not lie on a regular (unsheared) grid{tag_text}",
            "resample it onto a regular grid first, e.g. load it in Slicer with DICOM 'acquisition "
            "geometry regularization' enabled and export the volume, or convert it with dcm2niix",
        )

    spacing_ij = pixel_spacing[0]
    # PixelSpacing is [row spacing (between rows, along j), column spacing (between columns, along i)].
    spacing = (float(spacing_ij[1]), float(spacing_ij[0]), spacing_k)
    return SliceGeometry(
        order=[int(i) for i in order],
        spacing=spacing,
        origin=tuple(float(v) for v in first_ipp),
        direction=direction,
        rows=rows[0],
        columns=cols[0],
    )


def _orthonormal_direction(iop: np.ndarray, ds) -> np.ndarray:
    """Direction matrix [row cosine, column cosine, normal] from ImageOrientationPatient.

    Headers print the cosines with few decimals, so they are re-orthonormalised (Gram-Schmidt);
    cosines that are far from orthonormal mean a damaged header.
    """
    row, col = iop[:3], iop[3:]
    if (abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3
            or abs(float(row @ col)) > 1e-3):
        raise DicomError(
            f"ImageOrientationPatient {_fmt(iop)} in {_name(ds)} is not two orthogonal unit vectors",
            "re-export the series; the header is damaged",
        )
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


# ------------------------------------------------------------------------------------------------
# Pixels
# ------------------------------------------------------------------------------------------------
def _decoder_help(ds) -> str:
    """What to install to decode this transfer syntax (from pydicom's own decoder registry)."""
    try:
        from pydicom.pixels import get_decoder

        missing = get_decoder(ds.file_meta.TransferSyntaxUID).missing_dependencies
    except Exception:
        missing = []
    options = "; ".join(missing) if missing else "pylibjpeg with pylibjpeg-libjpeg/pylibjpeg-openjpeg, or python-gdcm"
    return (f"install a decoder for it into CardiacAI's Python (pip install, one of: {options}), or "
            "decompress the files first (e.g. 'gdcmconv --raw' or 'dcmdjpeg')")


def _transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    return getattr(meta, "TransferSyntaxUID", None) if meta is not None else None


def _rescale(ds) -> tuple[float, float]:
    slope = ds.get("RescaleSlope", None)
    intercept = ds.get("RescaleIntercept", None)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    return slope, intercept


def _gdcm_hu(path: Path) -> np.ndarray | None:
    """Decode one slice with SimpleITK's GDCM (JPEG lossless, JPEG-LS, JPEG 2000, RLE).

    GDCM applies RescaleSlope/Intercept itself, so this returns HU. None when it cannot.
    """
    try:
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        array = sitk.GetArrayFromImage(reader.Execute())
    except Exception as exc:  # GDCM cannot decode either
        log.debug("GDCM could not decode %s: %s", path, exc)
        return None
    return array.reshape(array.shape[-2:]) if array.ndim == 3 and array.shape[0] == 1 else array


#: Decoders tried for compressed slices that pydicom cannot decode (tests may replace it).
_fallback_decoders: list[Callable[[Path], np.ndarray | None]] = [_gdcm_hu]


def _slice_hu(ds, rows: int, columns: int) -> np.ndarray:
    """HU of one slice, shape (rows, columns): int32 when slope/intercept are integers, else float64."""
    path = Path(str(ds.filename))
    ts = _transfer_syntax(ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise UnsupportedFormatError(
            f"{path.name} is a multi-frame (enhanced) DICOM object with {frames} frames",
            "convert it to classic single-frame images or to NIfTI (e.g. with dcm2niix or Slicer) "
            "and load that",
        )
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DicomError(f"{path.name} is a colour image (SamplesPerPixel {ds.SamplesPerPixel})",
                         "select the greyscale CT series, not a screenshot or secondary capture")
    slope, intercept = _rescale(ds)
    try:
        raw = ds.pixel_array
    except Exception as exc:
        if ts is not None and ts.is_compressed:
            for decode in _fallback_decoders:
                hu = decode(path)
                if hu is not None and hu.shape == (rows, columns):
                    return hu
            raise DicomError(
                f"cannot decode the pixel data of {path.name}: it is compressed with {ts.name} and no "
                f"available decoder could read it ({type(exc).__name__}: {exc})",
                _decoder_help(ds) + "; if a decoder is installed, the file is damaged",
            ) from None
        raise DicomError(
            f"cannot read the pixel data of {path.name}: the file is damaged or truncated "
            f"({type(exc).__name__}: {exc})",
            "re-export or re-copy the series; remove the file only if it is not part of the volume",
        ) from None
    if raw.shape != (rows, columns):
        raise DicomError(f"{path.name} holds pixel data of shape {raw.shape}, expected {rows}x{columns}",
                         "re-export the series; the file is damaged")
    if slope == 1.0 and intercept == int(intercept):
        return raw.astype(np.int32) + np.int32(intercept)
    if slope == int(slope) and intercept == int(intercept):
        return raw.astype(np.int64) * int(slope) + int(intercept)
    return raw.astype(np.float64) * slope + intercept


def _hu_volume(slices: list[np.ndarray]) -> np.ndarray:
    """Stack slices (k, j, i) as int16 when all values are integers within int16, else float32."""
    if slices and all(np.issubdtype(s.dtype, np.integer) and s.size for s in slices):
        # The usual CT: check the range slice by slice and fill an int16 volume directly (no
        # int32/int64 copy of the whole volume: 4-8 bytes a voxel, then one more pass to convert).
        low, high = np.iinfo(np.int16).min, np.iinfo(np.int16).max
        if min(int(s.min()) for s in slices) >= low and max(int(s.max()) for s in slices) <= high:
            volume = np.empty((len(slices), *slices[0].shape), np.int16)
            for k, hu in enumerate(slices):
                volume[k] = hu
            return volume
    volume = np.stack(slices)
    if np.issubdtype(volume.dtype, np.integer):
        if volume.size and volume.min() >= np.iinfo(np.int16).min and volume.max() <= np.iinfo(np.int16).max:
            return volume.astype(np.int16)
        return volume.astype(np.float32)
    if np.all(np.isfinite(volume)) and np.all(volume == np.round(volume)) and volume.size \
            and volume.min() >= np.iinfo(np.int16).min and volume.max() <= np.iinfo(np.int16).max:
        return volume.astype(np.int16)
    return volume.astype(np.float32)


def _first_value(datasets, keyword: str, convert=str):
    for ds in datasets:
        value = ds.get(keyword, None)
        if value not in (None, ""):
            if convert is str and not isinstance(value, str) and hasattr(value, "__iter__"):
                return "\\".join(str(v) for v in value)
            try:
                return convert(value)
            except (TypeError, ValueError):
                return None
    return None


def _metadata(info: SeriesInfo, datasets: Sequence[Any], geometry: SliceGeometry, source: Path,
              reason: str, rescales: list[tuple[float, float]]) -> dict[str, Any]:
    first = datasets[0]
    slopes = sorted({s for s, _ in rescales})
    intercepts = sorted({i for _, i in rescales})
    ts = _transfer_syntax(first)
    padding = first.get("PixelPaddingValue", None)
    if isinstance(padding, (int, np.integer)) and int(first.get("PixelRepresentation", 0) or 0) == 1 and padding > 32767:
        padding = int(padding) - 65536  # pydicom reads the US/SS-ambiguous value as unsigned
    return {
        "source_path": str(source),
        "format": "dicom",
        "series_instance_uid": info.uid,
        "study_instance_uid": info.study_uid,
        "series_description": info.description,
        "series_number": info.series_number,
        "modality": info.modality,
        "image_type": "\\".join(info.image_type),
        "manufacturer": info.manufacturer,
        "manufacturer_model": _first_value(datasets, "ManufacturerModelName") or "",
        "kvp": _first_value(datasets, "KVP", float),
        "convolution_kernel": _first_value(datasets, "ConvolutionKernel") or "",
        "slice_thickness": _first_value(datasets, "SliceThickness", float),
        "slice_spacing": geometry.spacing[2],
        "contrast_agent": _first_value(datasets, "ContrastBolusAgent") or "",
        "patient_position": _first_value(datasets, "PatientPosition") or "",
        "body_part_examined": _first_value(datasets, "BodyPartExamined") or "",
        "study_date": _first_value(datasets, "StudyDate") or "",
        "transfer_syntax": ts.name if ts is not None else "",
        "number_of_files": len(datasets),
        "selection_reason": reason,
        # One value when all slices agree (the usual case), else the list of distinct values.
        "rescale_slope": slopes[0] if len(slopes) == 1 else slopes,
        "rescale_intercept": intercepts[0] if len(intercepts) == 1 else intercepts,
        "rescale_type": _first_value(datasets, "RescaleType") or "",
        "pixel_padding_value": int(padding) if isinstance(padding, (int, np.integer)) else None,
        # Files in slice order (k = 0 first), e.g. to reference the source images in a DICOM SEG.
        "source_files": [str(ds.filename) for ds in datasets],
    }


def read_dicom(path: str | os.PathLike, *, series_uid: str | None = None, require_ct: bool = True,
               progress: ProgressCallback | None = None) -> Image:
    """Read one DICOM CT series as an Image in HU with LPS geometry.

    Parameters
    ----------
    path: a folder (searched recursively) or one DICOM file (its series is read from the files in
        the same folder).
    series_uid: read this SeriesInstanceUID instead of choosing automatically.
    require_ct: refuse a series whose modality is not CT (the image is not checked further here;
        :func:`CardiacAI.io.read_image` runs ``check_ct_volume``).
    progress: optional ``progress(fraction, message)``; raise OperationCancelled inside it to stop.

    Returns
    -------
    Image: array (slices, rows, columns) in HU (int16, or float32 when the rescaled values are not
    integers within int16), spacing (i, j, k) mm, LPS origin/direction, modality, and metadata (see
    :func:`_metadata` keys: series/study UID, manufacturer, kvp, convolution_kernel,
    slice_thickness, contrast_agent, selection_reason, rescale_slope/intercept, source_files...).

    Raises
    ------
    InputError: the path does not exist.
    DicomError: no DICOM images; unknown ``series_uid``; no CT series (``require_ct``); a damaged,
        truncated or undecodable file; inconsistent, missing, duplicated or sheared slices; a 2D
        (single-slice) series.
    UnsupportedFormatError: multi-frame (enhanced) objects.
    OperationCancelled: raised by ``progress``.
    """
    from pydicom.errors import InvalidDicomError

    source = Path(path)
    if not source.exists():
        raise InputError(f"{source} does not exist", "check the path (a DICOM folder, DICOM file or volume file)")
    if source.is_file():
        try:
            picked = _read_header(source)
        except InvalidDicomError:
            raise DicomError(f"{source} is not a DICOM file (no DICOM header)",
                             "give a DICOM file or folder, or a NIfTI/NRRD/MHA volume") from None
        except Exception as exc:
            raise DicomError(f"{source} is a damaged DICOM file ({type(exc).__name__}: {exc})",
                             "re-export or re-copy the series") from None
        if not _has_pixels(picked):
            what = ("it is an image object without pixel data: the file is truncated" if _is_image_storage(picked)
                    else "it holds no image (e.g. a report or DICOMDIR)")
            raise DicomError(f"{source} cannot be read as a CT slice: {what}",
                             "give an image file of the CT series, or the folder that holds the series")
        if series_uid is None:
            series_uid = str(picked.get("SeriesInstanceUID", "") or "") or None
        files = _candidate_files(source.parent, recursive=False)
    else:
        files = _candidate_files(source, recursive=True)

    scan = _scan(files, progress)
    infos = _sorted_infos(scan)
    if not infos:
        details = f"{scan.files_seen} file(s) looked at"
        if scan.not_dicom:
            details += f", {len(scan.not_dicom)} not DICOM (e.g. {scan.not_dicom[0].name})"
        if scan.damaged:
            details += f", {len(scan.damaged)} damaged (e.g. {scan.damaged[0][0].name}: {scan.damaged[0][1]})"
        if scan.without_pixels:
            details += f", {scan.without_pixels} DICOM object(s) without an image"
        raise DicomError(f"no DICOM image found in {source} ({details})",
                         "give the folder that holds the CT series files (or a NIfTI/NRRD/MHA volume)")

    if scan.damaged:
        log.warning("%d file(s) in %s could not be read as DICOM images and were ignored: %s", len(scan.damaged),
                    source, "; ".join(f"{p.name} ({why})" for p, why in scan.damaged[:5]))
    info, reason = choose_series(infos, series_uid=series_uid, require_ct=require_ct)
    if len(infos) > 1 or series_uid is not None:
        log.info("DICOM series selection: %s", reason)
    datasets = scan.datasets[info.uid]
    try:
        geometry = slice_geometry(datasets)
    except DicomError as err:
        if scan.damaged:
            names = ", ".join(p.name for p, _ in scan.damaged[:5])
            raise DicomError(err.problem + f"; also, {len(scan.damaged)} file(s) in the folder could not "
                             f"be read at all ({names})", err.remedy) from None
        raise
    ordered = [datasets[i] for i in geometry.order]

    slices: list[np.ndarray] = []
    rescales: list[tuple[float, float]] = []
    for n, ds in enumerate(ordered):
        if progress is not None and n % 16 == 0:
            progress(0.5 + 0.5 * n / len(ordered), f"reading DICOM pixels ({n}/{len(ordered)})")
        slices.append(_slice_hu(ds, geometry.rows, geometry.columns))
        rescales.append(_rescale(ds))
    array = _hu_volume(slices)
    if progress is not None:
        progress(1.0, "DICOM series read")

    metadata = _metadata(info, ordered, geometry, source, reason, rescales)
    return Image(array=array, spacing=geometry.spacing, origin=geometry.origin, direction=geometry.direction,
                 modality=info.modality, metadata=metadata)


__all__ = [
    "SeriesInfo",
    "SliceGeometry",
    "list_dicom_series",
    "choose_series",
    "slice_geometry",
    "read_dicom",
]
