"""The one internal image representation of CardiacAI.

An :class:`Image` is a 3D scalar volume on a regular grid in the LPS patient coordinate system,
with intensities in Hounsfield units (HU) for CT. It is what every reader returns and every writer,
model and Slicer bridge takes, so geometry is handled the same way everywhere:

* ``array`` has numpy axis order (k, j, i) = (slice, row, column), as SimpleITK's
  ``GetArrayFromImage`` and Slicer's ``arrayFromVolume`` give it;
* ``spacing`` is (i, j, k) in mm, ``origin`` the LPS position (mm) of the centre of voxel
  (0, 0, 0), and ``direction`` the 3x3 direction cosines (column n = LPS unit vector of index
  axis n), exactly as ITK defines them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .coordinates import ijk_to_lps_matrix, ijk_to_ras_matrix
from .errors import InputError

#: Plausible voxel size range in mm; outside it the geometry is almost certainly broken
#: (a unit mix-up in the header, or a missing spacing defaulting to 1 in a projection image).
MIN_SPACING_MM = 0.05
MAX_SPACING_MM = 20.0


@dataclasses.dataclass(eq=False)
class Image:
    """A 3D volume with its LPS geometry.

    Attributes
    ----------
    array: numpy array, shape (K, J, I) = (slices, rows, columns). For CT: HU, int16 when the
        stored values are integers that fit, float32 otherwise.
    spacing: (3,) tuple, voxel size along (i, j, k) in mm.
    origin: (3,) tuple, LPS position in mm of the centre of voxel (0, 0, 0).
    direction: (3, 3) float64 array, direction cosines; column n is the LPS unit vector of index
        axis n (i, j, k).
    modality: DICOM modality ("CT", "MR", ...) or "" when the source does not say.
    metadata: free-form provenance (series UID, manufacturer, kVp, source path, ...).

    Raises
    ------
    InputError: on construction, when the array is not 3D, the geometry has the wrong shape, the
        spacing is not positive or the direction is not orthonormal.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    modality: str = ""
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise InputError(
                f"expected a 3D volume but got an array of {self.array.ndim} dimension(s) "
                f"(shape {tuple(self.array.shape)})",
                "give a whole CT series or a 3D volume file, not a single slice, a projection "
                "or a time series",
            )
        self.spacing = _triple(self.spacing, "spacing")
        self.origin = _triple(self.origin, "origin")
        direction = np.asarray(self.direction, dtype=float)
        if direction.size != 9:
            raise InputError(f"direction must have 9 elements, got {direction.size}")
        direction = direction.reshape(3, 3)
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise InputError(
                "the image direction cosines are not orthonormal (sheared or skewed grid)",
                "resample the image onto a regular grid before using it",
            )
        self.direction = direction
        if any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise InputError(
                f"voxel spacing {self.spacing} mm is not positive",
                "check the file header; spacing must be given in millimetres",
            )

    # -- geometry -------------------------------------------------------------------------------
    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Grid size as (I, J, K) = (columns, rows, slices)."""
        k, j, i = self.array.shape
        return int(i), int(j), int(k)

    @property
    def ijk_to_lps(self) -> np.ndarray:
        """4x4 IJK-to-LPS matrix (mm)."""
        return ijk_to_lps_matrix(self.spacing, self.origin, self.direction)

    @property
    def ijk_to_ras(self) -> np.ndarray:
        """4x4 IJK-to-RAS matrix (mm), as Slicer's ``vtkMRMLVolumeNode.GetIJKToRASMatrix``."""
        return ijk_to_ras_matrix(self.spacing, self.origin, self.direction)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm³)."""
        return float(np.prod(self.spacing)) / 1000.0

    def same_geometry(self, other: "Image", atol: float = 1e-6) -> bool:
        """True when ``other`` has the same grid size, spacing, origin and direction."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def with_array(self, array: np.ndarray, **changes: Any) -> "Image":
        """A new Image on the same grid with another voxel array (e.g. a label map).

        Raises InputError when the array shape differs from this image's.
        """
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise InputError(
                f"array shape {array.shape} does not match the image grid {self.array.shape}"
            )
        fields = dict(
            spacing=self.spacing,
            origin=self.origin,
            direction=self.direction.copy(),
            modality=self.modality,
            metadata=dict(self.metadata),
        )
        fields.update(changes)
        return Image(array=array, **fields)

    # -- SimpleITK interop ----------------------------------------------------------------------
    def to_sitk(self):
        """Convert to a ``SimpleITK.Image`` (LPS, same voxels; metadata is not carried)."""
        import SimpleITK as sitk

        out = sitk.GetImageFromArray(np.ascontiguousarray(self.array), isVector=False)
        out.SetSpacing(self.spacing)
        out.SetOrigin(self.origin)
        out.SetDirection(tuple(self.direction.ravel()))
        return out

    @classmethod
    def from_sitk(cls, image, modality: str = "", metadata: dict[str, Any] | None = None) -> "Image":
        """Build an Image from a 3D scalar ``SimpleITK.Image``.

        Raises InputError for a 2D, 4D or multi-component (RGB, vector) image.
        """
        import SimpleITK as sitk

        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"the image has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                "(colour or vector image)",
                "give a scalar CT volume",
            )
        if image.GetDimension() != 3:
            raise InputError(
                f"expected a 3D volume but the file holds a {image.GetDimension()}D image "
                f"of size {image.GetSize()}",
                "give a whole CT series or a 3D volume file, not a single slice or a time series",
            )
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=np.array(image.GetDirection()).reshape(3, 3),
            modality=modality,
            metadata=dict(metadata or {}),
        )


def _triple(value, name: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in np.asarray(value, dtype=float).ravel())
    if len(values) != 3:
        raise InputError(f"{name} must have 3 values (i, j, k), got {len(values)}")
    return values  # type: ignore[return-value]


def check_ct_volume(image: Image) -> None:
    """Refuse a volume that cannot be a usable CT scan, with a message saying why.

    Checks, in order: at least 2 voxels along every axis and 8 slices overall would be the
    minimum for 3D analysis; all values finite; not constant; voxel spacing within
    [MIN_SPACING_MM, MAX_SPACING_MM]; modality CT when the source states one.

    Raises
    ------
    InputError: naming the first failed check and what to do.
    """
    shape = image.array.shape
    if image.array.size == 0 or min(shape) < 2:
        raise InputError(
            f"the volume is empty or flat (size {image.shape_ijk[0]}x{image.shape_ijk[1]}x"
            f"{image.shape_ijk[2]} voxels)",
            "give a CT series with at least two slices in every direction",
        )
    if image.modality and image.modality.upper() != "CT":
        raise InputError(
            f"the image modality is {image.modality}, but this task needs CT",
            "select the CT series of the study (for MR use the CardiacFusion module)",
        )
    arr = image.array
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int(arr.size - np.count_nonzero(finite))
            raise InputError(
                f"the volume contains {bad} non-finite voxel value(s) (NaN or infinity)",
                "re-export the scan from the scanner or PACS; a valid CT has a finite HU value "
                "in every voxel",
            )
    lo, hi = arr.min(), arr.max()
    if lo == hi:
        raise InputError(
            f"the volume is constant (every voxel is {float(lo):g})",
            "the file holds no image data; re-export the scan",
        )
    for axis, s in zip("ijk", image.spacing):
        if not (MIN_SPACING_MM <= s <= MAX_SPACING_MM):
            raise InputError(
                f"voxel spacing along {axis} is {s:g} mm, outside the plausible range "
                f"{MIN_SPACING_MM}-{MAX_SPACING_MM} mm",
                "check that the header gives spacing in millimetres; fix it or resample the volume",
            )
