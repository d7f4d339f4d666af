"""Segmentation quality and size measures: Dice, HD95, ASD (mm), volume (mL), myocardial mass (g).

Surface distances come from MONAI's metric functions (``compute_hausdorff_distance``,
``compute_average_surface_distance``) with the voxel spacing passed in, so they are in millimetres
and respect anisotropic voxels. Label maps are :class:`CardiacAI.image.Image` objects whose arrays
are in (k, j, i) order; MONAI wants spacing in array-axis order, i.e. ``spacing[::-1]``.

Conventions for empty structures (stated because a structure can be absent from the field of view):
both masks empty → Dice 1, HD95 0, ASD 0 (the two agree that it is absent); exactly one empty →
Dice 0, HD95 and ASD infinite.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from .errors import InputError
from .image import Image

#: Myocardial tissue density used for LV mass, g/mL (as in the whole-heart Dense V-Net paper,
#: after the SCMR post-processing recommendations).
MYOCARDIUM_DENSITY_G_PER_ML = 1.05


@dataclasses.dataclass(frozen=True)
class OverlapMetrics:
    """Agreement of one structure between a predicted and a reference label map.

    Attributes: dice (0..1), hd95_mm (95th-percentile symmetric Hausdorff distance, mm),
    asd_mm (average symmetric surface distance, mm), volume_pred_ml, volume_ref_ml (mL).
    """

    dice: float
    hd95_mm: float
    asd_mm: float
    volume_pred_ml: float
    volume_ref_ml: float


def dice_coefficient(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient 2|A∩B| / (|A|+|B|) of two boolean masks of equal shape.

    Returns 1.0 when both masks are empty. Raises InputError when the shapes differ.
    """
    pred, ref = _pair(pred, ref)
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total


def surface_distances_mm(pred: np.ndarray, ref: np.ndarray, spacing_ijk) -> tuple[float, float]:
    """(HD95, ASD) in mm between two boolean masks in (k, j, i) order.

    Parameters
    ----------
    pred, ref: boolean arrays (K, J, I) on the same grid.
    spacing_ijk: voxel size (i, j, k) in mm, as :attr:`Image.spacing`.

    Both are symmetric: HD95 is MONAI's percentile-95 Hausdorff distance (max of the two directed
    95th percentiles) and ASD the mean of the two directed average surface distances. The masks are
    cropped to their joint bounding box (plus a margin) first: distances do not change and large
    CT grids stay fast.
    """
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    pred, ref = _pair(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return 0.0, 0.0
    if has_pred != has_ref:
        return math.inf, math.inf
    box = _joint_box(pred, ref, margin=2)
    spacing_kji = [float(s) for s in np.asarray(spacing_ijk, float)[::-1]]
    p = pred[box][None, None]
    r = ref[box][None, None]
    hd95 = compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=spacing_kji)
    asd = compute_average_surface_distance(p, r, include_background=True, symmetric=True, spacing=spacing_kji)
    return float(hd95.item()), float(asd.item())


def compare_labelmaps(pred: Image, ref: Image, structures: Mapping[str, int]) -> dict[str, OverlapMetrics]:
    """Per-structure Dice, HD95, ASD and volumes between two label maps on the same grid.

    Parameters
    ----------
    pred, ref: integer label maps (Image) with identical geometry.
    structures: structure key → label value, e.g. ``{"aorta": 5, ...}``.

    Raises
    ------
    InputError: when the two label maps are not on the same grid (resample one onto the other).
    """
    if not pred.same_geometry(ref, atol=1e-4):
        raise InputError(
            "the predicted and reference label maps are on different grids "
            f"(sizes {pred.shape_ijk} vs {ref.shape_ijk}, spacing {pred.spacing} vs {ref.spacing} mm)",
            "resample one label map onto the other's grid (nearest neighbour) before comparing",
        )
    out = {}
    for key, value in structures.items():
        p = pred.array == value
        r = ref.array == value
        hd95, asd = surface_distances_mm(p, r, pred.spacing)
        out[key] = OverlapMetrics(
            dice=dice_coefficient(p, r),
            hd95_mm=hd95,
            asd_mm=asd,
            volume_pred_ml=float(p.sum()) * pred.voxel_volume_ml,
            volume_ref_ml=float(r.sum()) * ref.voxel_volume_ml,
        )
    return out


def structure_volumes_ml(labelmap: Image, structures: Mapping[str, int]) -> dict[str, float]:
    """Volume in mL of each structure (voxel count × voxel volume) of an integer label map."""
    counts = np.bincount(np.asarray(labelmap.array).ravel().astype(np.int64, copy=False))
    return {
        key: float(counts[value]) * labelmap.voxel_volume_ml if value < len(counts) else 0.0
        for key, value in structures.items()
    }


def myocardial_mass_g(volume_ml: float, density_g_per_ml: float = MYOCARDIUM_DENSITY_G_PER_ML) -> float:
    """Myocardial mass in g from a myocardial volume in mL (mass = volume × 1.05 g/mL by default)."""
    if volume_ml < 0:
        raise InputError(f"myocardial volume must not be negative, got {volume_ml} mL")
    return volume_ml * density_g_per_ml


def _pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise InputError(f"mask shapes differ: {pred.shape} vs {ref.shape}",
                         "compare masks defined on the same voxel grid")
    return pred, ref


def _joint_box(a: np.ndarray, b: np.ndarray, margin: int) -> tuple[slice, ...]:
    union = np.logical_or(a, b)
    box = []
    for axis in range(union.ndim):
        other = tuple(ax for ax in range(union.ndim) if ax != axis)
        idx = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, union.shape[axis])))
    return tuple(box)
