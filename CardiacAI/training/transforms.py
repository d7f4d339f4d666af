"""MONAI transforms of the training pipeline: class-balanced patch sampling and augmentation.

Samples are dicts with ``image`` (float32 (1, D, H, W), already normalised), ``label`` (uint8
(1, D, H, W)) and ``label_cls_indices`` (voxel indices per class, computed once per case by
:func:`class_indices`, because searching a whole volume for every class at every draw is the
slowest part of patch sampling on a CPU).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from monai.transforms import (
    ClassesToIndicesd,
    Compose,
    RandAffined,
    RandCropByLabelClassesd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

INDICES_KEY = "label_cls_indices"
#: Partial-volume fractions (uint8 (S, D, H, W), 1/255ths) of the soft-target structures, where trained so.
FRACTIONS_KEY = "fractions"


def class_indices(sample: dict, num_classes: int) -> dict:
    """Add ``label_cls_indices`` (flat voxel indices of each class 0..num_classes-1) to ``sample``."""
    return ClassesToIndicesd(keys="label", num_classes=num_classes, indices_postfix="_cls_indices")(sample)


def train_transforms(patch_size: Sequence[int], num_classes: int, samples_per_case: int,
                     augment: bool = True, device: str | None = None, fractions: bool = False) -> Compose:
    """Patch sampling and augmentation for one case dict -> list of ``samples_per_case`` patch dicts.

    * ``RandCropByLabelClassesd`` with equal ratios for every class (background included), so
      small structures (coronary sinus, IMAs) are seen as often as large ones; classes absent
      from a case are skipped (their ratio becomes 0).
    * Augmentation (``augment``): random affine (rotation up to 10 degrees, scaling up to 10 %;
      linear for the image, nearest for labels), intensity scale and shift (10 % of the normalised
      range) and Gaussian noise. No flips: left and right are different anatomy in the heart.

    ``device`` (e.g. ``"cuda"``): where the random affine resamples the patch; None = the CPU. On a
    GPU the resampling of large patches would otherwise keep the GPU waiting for the CPU; the patch
    then comes back as a tensor on that device.

    ``fractions``: the samples also hold :data:`FRACTIONS_KEY` (soft targets), cropped and moved with
    the label but interpolated linearly, as the image is.

    Shapes: patch dicts hold ``image`` float32 (1, *patch_size) and ``label`` (1, *patch_size),
    with ``patch_size`` in array order (D, H, W).
    """
    patch = [int(p) for p in patch_size]
    keys = ["image", "label"] + ([FRACTIONS_KEY] if fractions else [])
    modes = ("bilinear", "nearest") + (("bilinear",) if fractions else ())
    steps = [
        RandCropByLabelClassesd(keys=keys, label_key="label", spatial_size=patch,
                                ratios=[1.0] * num_classes, num_classes=num_classes,
                                num_samples=int(samples_per_case), indices_key=INDICES_KEY, warn=False),
    ]
    if augment:
        angle = math.radians(10.0)
        steps += [
            RandAffined(keys=keys, prob=0.5, rotate_range=(angle,) * 3, scale_range=(0.1,) * 3,
                        mode=modes, padding_mode="border", device=device),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
            RandGaussianNoised(keys="image", prob=0.3, mean=0.0, std=0.02),
        ]
    return Compose(steps)


def pad_to_patch(image: np.ndarray, label: np.ndarray, patch_size: Sequence[int],
                 image_fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Pad (K, J, I) arrays at the far end of each axis up to at least ``patch_size`` (D, H, W).

    The image is padded with ``image_fill`` (the normalised value of air), the label with 0.
    """
    pads = _far_end_pads(image.shape, patch_size)
    if not any(after for _, after in pads):
        return image, label
    return (np.pad(image, pads, mode="constant", constant_values=image_fill),
            np.pad(label, pads, mode="constant", constant_values=0))


def pad_channels_to_patch(array: np.ndarray, patch_size: Sequence[int]) -> np.ndarray:
    """Pad a (C, K, J, I) array with 0 at the far end of each spatial axis up to at least ``patch_size``
    (D, H, W), as :func:`pad_to_patch` pads the label."""
    pads = [(0, 0)] + _far_end_pads(array.shape[1:], patch_size)
    if not any(after for _, after in pads):
        return array
    return np.pad(array, pads, mode="constant", constant_values=0)


def _far_end_pads(shape: Sequence[int], patch_size: Sequence[int]) -> list[tuple[int, int]]:
    """np.pad widths that pad each axis of ``shape`` at its far end up to at least ``patch_size``."""
    return [(0, max(0, int(p) - s)) for p, s in zip(patch_size, shape)]
