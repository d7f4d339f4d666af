"""Reading and writing images and label maps (DICOM, NIfTI, NRRD, MHA).

Public API
----------
- :func:`read_image` - a DICOM folder or file, or a volume file, to an :class:`~CardiacAI.image.Image`
  in HU with LPS geometry (checked with :func:`~CardiacAI.image.check_ct_volume`).
- :func:`list_dicom_series` / :class:`SeriesInfo` - the series in a DICOM folder.
- :func:`write_image`, :func:`write_labelmap`, :func:`read_labelmap` - volume files, written atomically.
- :func:`write_seg_nrrd` - a label map as a 3D Slicer ``.seg.nrrd`` without Slicer's libraries
  (:mod:`CardiacAI.io.seg_nrrd`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError, UnsupportedFormatError
from ..image import Image, check_ct_volume
from .atomic import atomic_output, full_suffix
from .dicom import ProgressCallback, SeriesInfo, choose_series, list_dicom_series, read_dicom
from .seg_nrrd import write_seg_nrrd
from .volume_files import READ_FORMATS, WRITE_FORMATS, read_labelmap, read_volume, volume_format, write_image, write_labelmap

#: Extensions taken as DICOM without looking inside (DICOM files often have no extension at all).
DICOM_EXTENSIONS = (".dcm", ".dicom", ".ima", "")


def _is_dicom_file(path: Path) -> bool:
    """True for a DICOM extension, or a file with the 'DICM' marker after its 128-byte preamble."""
    if full_suffix(path) in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_image(path: str | os.PathLike, *, series_uid: str | None = None, require_ct: bool = True,
               progress: ProgressCallback | None = None) -> Image:
    """Read a CT volume from a DICOM folder, a DICOM file or a volume file.

    Parameters
    ----------
    path: a DICOM folder (searched recursively; the CT series is chosen automatically, see
        :func:`CardiacAI.io.dicom.choose_series`), a single DICOM file (its series is read from the
        same folder), or a volume file (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd) assumed to hold HU.
    series_uid: for DICOM, read this SeriesInstanceUID.
    require_ct: refuse non-CT DICOM series, and run :func:`check_ct_volume` on the result (empty,
        flat, constant, non-finite, absurd spacing).
    progress: optional ``progress(fraction in [0, 1], message)`` for DICOM reading; raise
        :class:`~CardiacAI.errors.OperationCancelled` inside it to stop.

    Returns
    -------
    Image: array (slices, rows, columns) in HU, spacing (i, j, k) mm, LPS origin/direction,
    modality, metadata (always ``source_path`` and ``format``; for DICOM also series/study UID,
    series_description, manufacturer, manufacturer_model, kvp, convolution_kernel,
    slice_thickness, contrast_agent, patient_position, number_of_files, selection_reason,
    rescale_slope, rescale_intercept, source_files, ...).

    Raises
    ------
    InputError: the path does not exist, or the volume fails the CT checks.
    DicomError: DICOM problems (see :func:`CardiacAI.io.dicom.read_dicom`).
    UnsupportedFormatError: a file that is neither DICOM nor a supported volume format.
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source} does not exist",
                         "check the path (a DICOM folder, a DICOM file or a NIfTI/NRRD/MHA volume file)")
    if source.is_dir():
        image = read_dicom(source, series_uid=series_uid, require_ct=require_ct, progress=progress)
    elif volume_format(source) is not None:
        image = read_volume(source)
    elif _is_dicom_file(source):
        image = read_dicom(source, series_uid=series_uid, require_ct=require_ct, progress=progress)
    else:
        raise UnsupportedFormatError(
            f"{source.name} is neither DICOM nor a supported volume file (extension "
            f"'{full_suffix(source)}')",
            f"give a DICOM folder or file, or a volume file ({', '.join(READ_FORMATS)})",
        )
    if require_ct:
        check_ct_volume(image)
    return image


__all__ = [
    "read_image",
    "read_dicom",
    "read_volume",
    "list_dicom_series",
    "choose_series",
    "SeriesInfo",
    "write_image",
    "write_labelmap",
    "read_labelmap",
    "write_seg_nrrd",
    "atomic_output",
    "READ_FORMATS",
    "WRITE_FORMATS",
]
