"""Patient coordinate systems: the one place where LPS (DICOM, ITK) meets RAS (Slicer).

DICOM and ITK (and therefore :class:`CardiacAI.image.Image`) describe physical points in the LPS
patient coordinate system: +x towards the patient's Left, +y Posterior, +z Superior (head).
Slicer's MRML nodes use RAS: +x Right, +y Anterior, +z Superior. The two differ by a sign flip of
the first two axes; every conversion in CardiacAI goes through the functions below.

All matrices are 4x4 homogeneous, float64, acting on column vectors of millimetres.
Voxel index order is (i, j, k) = (column, row, slice), i.e. the *reverse* of numpy's (k, j, i).
"""

from __future__ import annotations

import numpy as np

#: Homogeneous 4x4 matrix mapping LPS to RAS (and, being its own inverse, RAS to LPS).
LPS_TO_RAS: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])
RAS_TO_LPS: np.ndarray = LPS_TO_RAS


def ijk_to_lps_matrix(spacing, origin, direction) -> np.ndarray:
    """Build the IJK-to-LPS matrix of an image grid.

    Parameters
    ----------
    spacing: (3,) voxel size along i, j, k in mm.
    origin: (3,) LPS position in mm of the centre of voxel (0, 0, 0).
    direction: (3, 3) direction cosines; column n is the unit LPS vector of index axis n.

    Returns
    -------
    (4, 4) float64 matrix M with ``M @ [i, j, k, 1] = [L, P, S, 1]`` (mm).
    """
    m = np.eye(4)
    m[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(np.asarray(spacing, float))
    m[:3, 3] = np.asarray(origin, dtype=float)
    return m


def array_axis_along(direction, lps_axis: int) -> tuple[int, bool]:
    """The axis of a numpy (K, J, I) image array whose index direction is closest to one LPS axis.

    ``direction``: the image's (3, 3) direction cosines (column n: the unit LPS vector of index axis i, j,
    k); ``lps_axis``: 0 = x (patient left), 1 = y (posterior), 2 = z (superior). Returns (array axis,
    0 = k, 1 = j, 2 = i; whether the index increases toward the LPS axis's positive end).
    """
    row = np.asarray(direction, dtype=float).reshape(3, 3)[lps_axis]
    column = int(np.abs(row).argmax())
    return 2 - column, bool(row[column] > 0)


def ijk_to_ras_matrix(spacing, origin, direction) -> np.ndarray:
    """IJK-to-RAS matrix (Slicer's ``IJKToRASMatrix``) of an image grid given in LPS terms.

    Same parameters as :func:`ijk_to_lps_matrix`; returns ``LPS_TO_RAS @ ijk_to_lps_matrix(...)``.
    """
    return LPS_TO_RAS @ ijk_to_lps_matrix(spacing, origin, direction)


def grid_from_ijk_to_ras(matrix) -> tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray]:
    """Split a 4x4 IJK-to-RAS matrix into (spacing, LPS origin, LPS direction).

    Inverse of :func:`ijk_to_ras_matrix`. Raises ``ValueError`` if a column has zero length
    (a degenerate grid).
    """
    m = RAS_TO_LPS @ np.asarray(matrix, dtype=float).reshape(4, 4)
    axes = m[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"degenerate IJK-to-RAS matrix: voxel spacing {spacing.tolist()} mm")
    direction = axes / spacing
    return tuple(float(s) for s in spacing), tuple(float(o) for o in m[:3, 3]), direction


def lps_to_ras_points(points) -> np.ndarray:
    """Convert (N, 3) LPS points in mm to RAS (or RAS to LPS: the map is an involution)."""
    p = np.array(points, dtype=float, copy=True)
    p[..., :2] *= -1.0
    return p


ras_to_lps_points = lps_to_ras_points
