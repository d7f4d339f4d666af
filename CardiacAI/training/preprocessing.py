"""The image preprocessing a CardiacAI model is trained with; inference must apply exactly the same.

1. Reorient to the LPS-aligned grid (direction = identity: index i -> Left, j -> Posterior,
   k -> Superior), so the array axes (k, j, i) mean the same anatomy for every image.
2. Resample to the model spacing (linear for CT, nearest neighbour for labels), via
   :func:`CardiacAI.inference.resample_to_spacing`.
3. Clip HU to the intensity window and map it linearly to the output range (default
   -1000..1000 HU -> -1..1), as the IMA paper's "clipping and intensity normalisation".
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..image import Image


def to_model_grid(image: Image, spacing_mm: Sequence[float], is_label: bool = False) -> Image:
    """Reorient ``image`` to the identity LPS direction and resample it to ``spacing_mm`` (i, j, k).

    Returns ``image`` itself when it already has that direction and spacing. Label maps
    (``is_label=True``) use nearest neighbour and keep their dtype; CT uses linear interpolation.
    """
    spacing = tuple(float(s) for s in spacing_mm)
    out = image
    if not np.allclose(image.direction, np.eye(3), atol=1e-6):
        import SimpleITK as sitk  # here: an image already on the grid needs no SimpleITK

        oriented = sitk.DICOMOrient(image.to_sitk(), "LPS")
        out = Image.from_sitk(oriented, modality=image.modality, metadata=dict(image.metadata))
        if not np.allclose(out.direction, np.eye(3), atol=1e-4):
            # An oblique grid: DICOMOrient only permutes/flips axes, so resample onto an aligned grid.
            out = _resample_oblique(out, is_label)
    if not np.allclose(out.spacing, spacing, atol=1e-4):
        from ..inference import resample_to_spacing

        out = resample_to_spacing(out, spacing, is_label=is_label)
        if not is_label and np.issubdtype(image.array.dtype, np.integer):
            out = out.with_array(np.round(out.array).astype(np.int16))
    return out


def _resample_oblique(image: Image, is_label: bool) -> Image:
    import SimpleITK as sitk

    src = image.to_sitk()
    last = np.array(src.GetSize()) - 1
    corners = [src.TransformIndexToPhysicalPoint([int(c) for c in np.array(corner) * last])
               for corner in np.ndindex(2, 2, 2)]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    spacing = np.array(image.spacing)
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    fill = 0.0 if is_label else float(image.array.min())
    res = sitk.Resample(src, [int(s) for s in size], sitk.Transform(),
                        sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear,
                        tuple(lo), tuple(spacing), tuple(np.eye(3).ravel()), fill)
    return Image.from_sitk(res, modality=image.modality, metadata=dict(image.metadata))


def normalise_intensity(array_hu: np.ndarray, window_hu: Sequence[float] = (-1000.0, 1000.0),
                        out_range: Sequence[float] = (-1.0, 1.0)) -> np.ndarray:
    """Clip HU to ``window_hu`` and map linearly to ``out_range``; float32, same shape.

    This is ``monai.transforms.ScaleIntensityRange(a_min, a_max, b_min, b_max, clip=True)``.
    """
    from monai.transforms import ScaleIntensityRange

    lo, hi = (float(v) for v in window_hu)
    b_lo, b_hi = (float(v) for v in out_range)
    scaled = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=b_lo, b_max=b_hi, clip=True)(
        np.asarray(array_hu, dtype=np.float32))
    return np.asarray(scaled, dtype=np.float32)
