"""Drawing aorta phantoms for the aorta followers' tests (test_aorta_following, test_ascending_aorta_following):
distances on an axial slice and discs with a soft edge, as a CT draws a vessel with partial volume."""

from __future__ import annotations

import numpy as np


def distance_mm(shape_ji, spacing_ijk, cj: float, ci: float) -> np.ndarray:
    """Distance (mm) from (cj, ci) (row, column in voxels) of every voxel of a slice of shape (J, I) whose voxels
    are ``spacing_ijk`` (i, j, k) mm."""
    jj, ii = np.mgrid[0:shape_ji[0], 0:shape_ji[1]]
    return np.hypot((jj - cj) * spacing_ijk[1], (ii - ci) * spacing_ijk[0])


def paint(hu: np.ndarray, k: int, distance: np.ndarray, radius_mm: float, value: float, background: float) -> None:
    """Paint a disc of ``radius_mm`` and HU ``value`` onto slice k of ``hu`` (K, J, I) with a 0.5 mm soft edge
    (partial volume) over ``background`` HU; ``distance``: each voxel's distance (mm) from the disc's centre."""
    edge = 0.5 * (1.0 - np.tanh((distance - radius_mm) / 0.5))
    hu[k] = np.maximum(hu[k], background + (value - background) * edge)
