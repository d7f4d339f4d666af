"""Volume files (NIfTI, NRRD, MetaImage) read and written through SimpleITK.

SimpleITK converts every format's own convention (NIfTI's RAS-based qform/sform, NRRD's
"space" field, MetaImage's AnatomicalOrientation) to ITK's LPS physical space, so an
:class:`~CardiacAI.image.Image` read here has the same LPS meaning as one read from DICOM.

Writes go through :func:`CardiacAI.io.atomic.atomic_output`: the file appears complete or not at
all, and an existing file is replaced only by a complete new one. Only single-file formats are
written (.nii, .nii.gz, .nrrd, .mha): a detached header (.nhdr, .mhd) names its data file, which a
temporary name would break.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UnsupportedFormatError
from ..image import Image
from .atomic import atomic_output, full_suffix

#: Readable volume formats by (full, lower-case) extension.
READ_FORMATS: dict[str, str] = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".seg.nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
}
#: Writable formats (single-file only).
WRITE_FORMATS: dict[str, str] = {".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".mha": "metaimage"}

#: Largest label value a label map may hold (written as uint16 beyond 255).
MAX_LABEL = int(np.iinfo(np.uint16).max)

#: Geometry tolerance for matching a label map to its reference image: 1e-3 mm in spacing and
#: origin, 1e-4 in direction cosines. Far below any voxel size, but above the rounding of headers
#: written by other tools (NIfTI stores its sform in single precision).
GEOMETRY_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4


def volume_format(path: str | os.PathLike, *, for_writing: bool = False) -> str | None:
    """The format name ("nifti", "nrrd", "metaimage") of ``path`` from its extension, or None."""
    table = WRITE_FORMATS if for_writing else READ_FORMATS
    return table.get(full_suffix(path))


def _supported_text(table: dict[str, str]) -> str:
    return ", ".join(table)


def read_volume(path: str | os.PathLike) -> Image:
    """Read a 3D scalar volume file.

    Parameters
    ----------
    path: .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd file.

    Returns
    -------
    Image with the file's voxel type kept (e.g. int16 stays int16), array (k, j, i), spacing
    (i, j, k) mm, LPS origin and direction; modality "" (volume files do not say), metadata with
    ``source_path`` and ``format``.

    Raises
    ------
    InputError: the file does not exist, cannot be parsed (damaged or truncated), is not 3D or not
        scalar.
    UnsupportedFormatError: unknown extension.
    """
    import SimpleITK as sitk

    source = Path(path)
    fmt = volume_format(source)
    if fmt is None:
        raise UnsupportedFormatError(
            f"{source.name} has an unsupported extension '{full_suffix(source) or '(none)'}'",
            f"give a DICOM folder or file, or a volume file ({_supported_text(READ_FORMATS)})",
        )
    if not source.is_file():
        raise InputError(f"{source} does not exist", "check the path")
    try:
        image = sitk.ReadImage(str(source))
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        raise InputError(
            f"cannot read {source.name} as {fmt}: the file is damaged, truncated or not a {fmt} file "
            f"({detail[-1] if detail else 'SimpleITK read error'})",
            "re-export or re-copy the volume",
        ) from None
    metadata: dict[str, Any] = {"source_path": str(source), "format": fmt}
    result = Image.from_sitk(image, metadata=metadata)
    if fmt == "nifti" and np.issubdtype(result.array.dtype, np.floating):
        _restore_non_finite_nifti(source, result.array)
    return result


def _restore_non_finite_nifti(path: Path, array: np.ndarray) -> None:
    """Put back the NaN/infinite voxels that ITK's NIfTI reader silently turns into 0.

    A NaN read as 0 HU (water) would pass every check; with the values restored,
    ``check_ct_volume`` refuses the volume. ITK keeps the file's voxel order, so nibabel's
    (i, j, k) data transposed is the (k, j, i) array. Only float NIfTI files are read twice.
    """
    import nibabel as nib

    try:
        data = np.asanyarray(nib.load(str(path)).dataobj)
    except Exception:  # nibabel cannot parse what ITK could: keep ITK's reading
        return
    if data.ndim != array.ndim:
        return
    data = data.transpose(tuple(range(data.ndim))[::-1])
    if data.shape != array.shape:
        return
    non_finite = ~np.isfinite(data)
    if non_finite.any():
        array[non_finite] = data[non_finite]


def _to_labels(array: np.ndarray, what: str) -> np.ndarray:
    """Cast a label array to uint8 (max <= 255) or uint16; refuse non-integer or negative values."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(f"{what} has voxel type {array.dtype}, not numbers", "give an integer label map")
    if array.size == 0:
        raise InputError(f"{what} is empty", "give a label map with voxels")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(
                f"{what} holds non-integer values (voxel type {array.dtype}), so it is not a label map",
                "give a label map with integer labels (0 = background); a probability map must be "
                "thresholded first",
            )
    lo, hi = array.min(), array.max()
    if lo < 0 or hi > MAX_LABEL:
        raise InputError(
            f"{what} holds label values from {lo:g} to {hi:g}; labels must be within 0-{MAX_LABEL}",
            "give a label map with non-negative integer labels (0 = background)",
        )
    return array.astype(np.uint8 if hi <= np.iinfo(np.uint8).max else np.uint16)


def _write(image: Image, path: str | os.PathLike, array: np.ndarray) -> Path:
    import SimpleITK as sitk

    dest = Path(path)
    if volume_format(dest, for_writing=True) is None:
        raise UnsupportedFormatError(
            f"cannot write {dest.name}: unsupported extension '{full_suffix(dest) or '(none)'}'",
            f"use one of {_supported_text(WRITE_FORMATS)}",
        )
    sitk_image = image.with_array(array).to_sitk()
    with atomic_output(dest) as tmp:
        try:
            sitk.WriteImage(sitk_image, str(tmp), useCompression=True)
        except RuntimeError as exc:
            detail = str(exc).strip().splitlines()
            raise InputError(f"cannot write {dest}: {detail[-1] if detail else exc}",
                             "check free disk space and permissions") from None
    return dest


def write_image(image: Image, path: str | os.PathLike) -> Path:
    """Write an image to a NIfTI (.nii, .nii.gz), NRRD (.nrrd) or MetaImage (.mha) file, atomically.

    The voxel type is kept (int16 HU stays int16); geometry is written in each format's convention
    (SimpleITK converts from LPS). NRRD and MHA are written compressed. Metadata is not written.

    Returns the destination path.

    Raises
    ------
    UnsupportedFormatError: unknown or detached-header extension.
    InputError: the folder does not exist or is not writable, or the write fails (nothing is left
        behind and an existing file is unchanged).
    """
    return _write(image, path, image.array)


def write_labelmap(image: Image, path: str | os.PathLike) -> Path:
    """Write a label map (integer labels, 0 = background) atomically and compressed.

    Stored as uint8 when every label is <= 255, else uint16. Same formats and errors as
    :func:`write_image`; additionally InputError when the values are negative, above 65535 or not
    integers.
    """
    return _write(image, path, _to_labels(image.array, "the label map to write"))


def describe_geometry(image: Image) -> str:
    """A one-line geometry description for messages: size (i, j, k), spacing mm, LPS origin, direction."""
    size = "x".join(str(n) for n in image.shape_ijk)
    spacing = "x".join(f"{s:.4g}" for s in image.spacing)
    origin = ", ".join(f"{o:.4g}" for o in image.origin)
    direction = ", ".join(f"{d:.3g}" for d in image.direction.ravel())
    return f"{size} voxels of {spacing} mm, origin ({origin}) mm LPS, direction [{direction}]"


def read_labelmap(path: str | os.PathLike, reference: Image | None = None) -> Image:
    """Read an integer label map (0 = background) from a volume file.

    Parameters
    ----------
    path: .nii, .nii.gz, .nrrd, .seg.nrrd (single layer), .nhdr, .mha or .mhd file.
    reference: when given, the label map must lie on the same grid (size, spacing and origin within
        GEOMETRY_TOLERANCE_MM, direction within DIRECTION_TOLERANCE); its modality and metadata
        are not copied.

    Returns
    -------
    Image with a uint8 (max label <= 255) or uint16 array (k, j, i) and the file's LPS geometry.

    Raises
    ------
    InputError: unreadable file; non-integer, negative or too large labels; a grid different from
        ``reference`` (the message gives both geometries).
    UnsupportedFormatError: unknown extension.
    """
    image = read_volume(path)
    labels = image.with_array(_to_labels(image.array, f"{Path(path).name}"))
    if reference is not None:
        same = (
            labels.array.shape == reference.array.shape
            and np.allclose(labels.spacing, reference.spacing, atol=GEOMETRY_TOLERANCE_MM, rtol=0)
            and np.allclose(labels.origin, reference.origin, atol=GEOMETRY_TOLERANCE_MM, rtol=0)
            and np.allclose(labels.direction, reference.direction, atol=DIRECTION_TOLERANCE, rtol=0)
        )
        if not same:
            raise InputError(
                f"the label map {Path(path).name} is not on the grid of the image: label map "
                f"{describe_geometry(labels)}; image {describe_geometry(reference)}",
                "use the label map made for this image, or resample it onto the image grid first "
                "(e.g. Slicer's Resample Scalar/Vector/DWI Volume with nearest-neighbour interpolation)",
            )
    return labels


__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "volume_format",
    "read_volume",
    "write_image",
    "write_labelmap",
    "read_labelmap",
    "describe_geometry",
]
