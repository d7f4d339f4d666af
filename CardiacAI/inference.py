"""Model-independent inference machinery: device choice, resampling to and from model spacing,
and MONAI sliding-window inference with Gaussian blending, progress and cancel.

Resampling happens here and nowhere else: the input CT is resampled (linear) onto a grid of the
model's spacing covering the same physical extent, and the predicted class probabilities are
resampled back (trilinear, then argmax: :func:`labels_from_probabilities_onto`) onto the input grid,
so the output label map has exactly the input geometry and boundaries finer than the model's voxels.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
from typing import Callable, Sequence

import numpy as np

from .errors import InputError, OperationCancelled
from .image import Image

#: progress(fraction_done in [0, 1], message)
ProgressCallback = Callable[[float, str], None]


#: Set to 0 to keep CPU inference in float32 on CPUs with native bfloat16 (e.g. to compare results).
CPU_BFLOAT16_ENV_VAR = "CARDIACAI_CPU_BFLOAT16"

#: On the CPU the networks' weights and each sliding window are channels-last (NDHWC), the layout oneDNN's
#: 3D convolutions are fastest in: on 2 cores of this project's machine a bfloat16 window takes 0.77 times as
#: long for the IMA/aorta U-Net (96 x 160 x 120), 0.85 for SE + Swin, 0.96 for the Dense V-Net and 0.52 for
#: the localiser (``benchmarks/bench_precision.py``). Only the order of the sums changes: the logits differ by
#: rounding: on the real CTs 0-0.03 % of the labelled voxels change label with the default models, 0.1-0.7 %
#: with SE + Swin (whose unenhanced aorta follower amplifies them). On CUDA the layout is left as it is (not
#: measured there).
CPU_CHANNELS_LAST = True


def in_inference_layout(network, device: str):
    """``network`` (a torch module) with its weights in the memory layout inference runs in on ``device``
    ("cpu" or "cuda..."): channels-last (NDHWC, ``torch.channels_last_3d``) on the CPU where
    :data:`CPU_CHANNELS_LAST`, as it is on CUDA. The module is converted in place and returned."""
    import torch

    if device == "cpu" and CPU_CHANNELS_LAST:
        network = network.to(memory_format=torch.channels_last_3d)
    return network


@dataclasses.dataclass(frozen=True)
class DeviceChoice:
    """The torch device inference runs on, and why (shown to the user: "GPU not used" is a top complaint).

    ``autocast_dtype``: "float16" on CUDA, "bfloat16" on a CPU with native bfloat16 arithmetic
    (AVX512-BF16 or AMX), None for float32.
    """

    device: str
    reason: str
    autocast_dtype: str | None = None

    @property
    def mixed_precision(self) -> bool:
        """Whether the networks run under autocast in a 16-bit type."""
        return self.autocast_dtype is not None


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where oneDNN convolutions
    in bfloat16 run 2-3x faster than float32 (benchmarks/bench_precision.py). Without it bfloat16 is
    emulated and slower, so it is not used. False if torch cannot tell."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_device(prefer_gpu: bool = True) -> DeviceChoice:
    """Pick CUDA when present and wanted, else the CPU, and say why.

    On the CPU, torch's intra-op threads are set to the number of available cores (at least 1),
    which matters on small workstations where the default can oversubscribe, and the networks run in
    bfloat16 where the CPU has it natively (:func:`cpu_has_native_bfloat16`; switch off with the
    environment variable ``CARDIACAI_CPU_BFLOAT16=0``): on the whole-heart synthetic test scans the
    mean Dice per protocol stays within 0.002 of float32, each structure's within 0.02
    (docs/segmentation.md).
    """
    import torch

    if prefer_gpu and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return DeviceChoice("cuda", f"CUDA GPU {name}", autocast_dtype="float16")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))
    if not prefer_gpu:
        reason = f"CPU ({cores} threads): GPU use switched off"
    elif torch.version.cuda is None:
        reason = f"CPU ({cores} threads): this PyTorch build has no CUDA support"
    else:
        reason = f"CPU ({cores} threads): no CUDA GPU detected"
    if os.environ.get(CPU_BFLOAT16_ENV_VAR, "1").strip() != "0" and cpu_has_native_bfloat16():
        return DeviceChoice("cpu", reason + " (bfloat16)", autocast_dtype="bfloat16")
    return DeviceChoice("cpu", reason)


def resample_to_spacing(image: Image, spacing_ijk: Sequence[float], *, is_label: bool = False,
                        default_value: float | None = None) -> Image:
    """Resample ``image`` onto a grid of ``spacing_ijk`` (mm) covering the same physical extent.

    The new grid keeps the origin corner (the outer edge of voxel 0) and the direction; its size is
    ``ceil(extent / spacing)`` per axis. Linear interpolation for intensities (float32 result),
    nearest neighbour for label maps (``is_label=True``; dtype kept). Points outside the input get
    ``default_value`` (default: the image minimum, i.e. air for CT; 0 for labels).
    """
    import SimpleITK as sitk

    spacing_ijk = tuple(float(s) for s in spacing_ijk)
    if any(s <= 0 for s in spacing_ijk):
        raise InputError(f"target spacing {spacing_ijk} mm must be positive")
    src = image.to_sitk()
    old_size = np.array(image.shape_ijk, float)
    old_spacing = np.array(image.spacing, float)
    new_spacing = np.array(spacing_ijk)
    new_size = np.maximum(1, np.ceil(old_size * old_spacing / new_spacing - 1e-6)).astype(int)
    # Keep the outer corner of the first voxel fixed: shift the centre of voxel 0 by half a voxel difference.
    shift = image.direction @ ((new_spacing - old_spacing) / 2.0)
    new_origin = np.array(image.origin) + shift
    if default_value is None:
        default_value = 0.0 if is_label else float(image.array.min())
    resampled = sitk.Resample(
        src if is_label else sitk.Cast(src, sitk.sitkFloat32),
        [int(s) for s in new_size],
        sitk.Transform(),
        sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear,
        tuple(new_origin),
        tuple(new_spacing),
        tuple(image.direction.ravel()),
        float(default_value),
    )
    return Image.from_sitk(resampled, modality=image.modality, metadata=dict(image.metadata))


def resample_labels_onto(labelmap: Image, reference: Image) -> Image:
    """Nearest-neighbour resampling of an integer label map onto ``reference``'s grid (exact geometry).

    Voxels of the reference outside the label map's extent get label 0.
    """
    import SimpleITK as sitk

    pixel_type = sitk.sitkUInt8 if labelmap.array.max(initial=0) <= 255 else sitk.sitkUInt16
    # The reference grid by its geometry alone: reference.to_sitk() would copy the whole CT just
    # to read its size, origin, spacing and direction.
    out = sitk.Resample(labelmap.to_sitk(), [int(n) for n in reference.shape_ijk], sitk.Transform(),
                        sitk.sitkNearestNeighbor, tuple(float(v) for v in reference.origin),
                        tuple(float(v) for v in reference.spacing),
                        tuple(float(v) for v in reference.direction.ravel()), 0.0, pixel_type)
    return reference.with_array(sitk.GetArrayFromImage(out), modality="", metadata={})


def labels_from_probabilities_onto(probs: np.ndarray, grid: Image, reference: Image,
                                   model_labels: np.ndarray | None = None) -> np.ndarray:
    """Label map on ``reference``'s grid from class probabilities on the model's grid ``grid``.

    Each reference voxel gets the class whose probability, trilinearly interpolated at the voxel's
    centre (LPS, mm), is largest: the same labels as resampling every class's probability onto the
    reference grid and taking the argmax there, but computed only where it can differ from the
    model-grid argmax. Where the 8 model voxels around a point share one label, every convex
    combination of their probability vectors keeps that label, so those points take the
    nearest-neighbour label; only the points whose 8 model voxels disagree are interpolated.
    Why: a 2-3 mm artery is 2-3 voxels of a 1 mm grid, and nearest-neighbour labels put its edge on
    that grid; resampled back onto a 0.7 mm grid, a perfect 1 x 1 x 2 mm prediction of an internal
    mammary artery scores Dice 0.80-0.84 with nearest-neighbour labels and 0.89-0.92 this way
    (generator tuning scans, ``benchmarks/resampling_ceiling.py``).

    Parameters
    ----------
    probs: float array (C, K, J, I), class scores on ``grid`` (any scores whose argmax is the label).
    grid: the model's grid (its array is ignored; its geometry places ``probs``).
    reference: the grid to label (its array is ignored).
    model_labels: the argmax of ``probs`` on ``grid`` (uint8 (K, J, I), :func:`labels_from_probabilities`) when the
        caller has it already; computed here otherwise.

    Returns
    -------
    uint8 array (K, J, I) of ``reference``'s shape; 0 outside ``grid``'s extent.

    Raises
    ------
    InputError: ``probs`` is not (C, K, J, I) of ``grid``'s shape, or ``model_labels`` not (K, J, I) of it.
    """
    from scipy import ndimage

    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[1:] != grid.array.shape:
        raise InputError(f"class scores of shape {probs.shape} do not match the model grid {grid.array.shape}")
    if model_labels is None:
        model_labels = labels_from_probabilities(probs)
    elif model_labels.shape != probs.shape[1:] or model_labels.dtype != np.uint8:
        raise InputError(f"model-grid labels {model_labels.dtype} {model_labels.shape} do not match the class scores "
                         f"{probs.shape}", "pass labels_from_probabilities(probs), or leave model_labels out")
    # One nearest-neighbour resampling carries both the label (low byte) and whether the model voxel
    # has another label in its 3x3x3 neighbourhood (bit 8), which holds the 8 voxels around any point
    # whose nearest voxel it is.
    tagged = model_labels.astype(np.uint16)
    found = ndimage.find_objects((model_labels > 0).view(np.uint8))
    if found and found[0] is not None:  # background only has no boundary: filter the labels' box alone
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in found[0])
        inside = model_labels[box]
        tagged[box][ndimage.maximum_filter(inside, size=3) != ndimage.minimum_filter(inside, size=3)] |= 256
    resampled = resample_labels_onto(grid.with_array(tagged), reference).array
    labels = (resampled & 255).astype(np.uint8)
    near = resampled >= 256
    if not near.any():
        return labels
    k, j, i = np.nonzero(near)
    to_model = np.linalg.inv(grid.ijk_to_lps) @ reference.ijk_to_lps
    coords = (to_model[:3, :3] @ np.stack([i, j, k]) + to_model[:3, 3:])[::-1]  # model (k, j, i) rows
    # Only points whose 8 surrounding model voxels disagree can differ from the nearest label.
    top = np.array(model_labels.shape)[:, None] - 1
    low = np.clip(np.floor(coords).astype(np.intp), 0, top)
    high = np.minimum(low + 1, top)
    first = model_labels[low[0], low[1], low[2]]
    mixed = np.zeros(len(i), bool)
    corners = itertools.product((low[0], high[0]), (low[1], high[1]), (low[2], high[2]))
    for kk, jj, ii in itertools.islice(corners, 1, None):  # the first corner is ``first``
        mixed |= model_labels[kk, jj, ii] != first
    coords = coords[:, mixed]
    best = np.full(coords.shape[1], -np.inf, np.float32)
    chosen = np.zeros(coords.shape[1], np.uint8)
    for c in range(probs.shape[0]):
        value = ndimage.map_coordinates(probs[c], coords, order=1, mode="nearest", prefilter=False)
        better = value > best
        chosen[better] = c
        np.maximum(best, value, out=best)
    labels[k[mixed], j[mixed], i[mixed]] = chosen
    return labels


def sliding_window_logits(volume: np.ndarray, network, *, roi_size: Sequence[int], device: DeviceChoice,
                          overlap: float = 0.25, sw_batch_size: int = 1,
                          progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                          progress_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Run ``network`` over a normalised volume with MONAI sliding-window inference (Gaussian blending).

    Parameters
    ----------
    volume: float32 array (K, J, I), already normalised the way the model was trained.
    network: torch module mapping (N, 1, D, H, W) to logits (N, C, D, H, W), in eval mode.
    roi_size: window size in voxels, (D, H, W) = (k, j, i) order.
    device: from :func:`choose_device`; the network runs under autocast in its ``autocast_dtype``
        (float16 on CUDA, bfloat16 on a CPU that has it), else in float32; on the CPU each window is
        channels-last (:data:`CPU_CHANNELS_LAST`).
    progress: called with the fraction done (mapped into ``progress_range``) after each window batch.
    cancel: when set, inference stops at the next window batch with :class:`OperationCancelled`.

    Returns
    -------
    Softmax probabilities, float32 array (C, K, J, I), on the CPU.
    """
    import torch
    from monai.data.utils import dense_patch_slices
    from monai.inferers import sliding_window_inference

    roi = tuple(int(r) for r in roi_size)
    padded = tuple(max(s, r) for s, r in zip(volume.shape, roi))
    interval = tuple(max(int(r * (1 - overlap)), 1) for r in roi)
    total_batches = math.ceil(len(dense_patch_slices(padded, roi, interval)) / sw_batch_size)
    done = [0]
    lo, hi = progress_range
    device_type = "cuda" if device.device.startswith("cuda") else "cpu"
    dtype = getattr(torch, device.autocast_dtype) if device.autocast_dtype else None
    channels_last = device_type == "cpu" and CPU_CHANNELS_LAST

    def predictor(batch):
        if cancel is not None and cancel.is_set():
            raise OperationCancelled("segmentation cancelled by the user", "nothing was written")
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = network(batch)
        done[0] += 1
        if progress is not None:
            progress(lo + (hi - lo) * min(done[0] / total_batches, 1.0), f"window {done[0]}/{total_batches}")
        return out.float()

    tensor = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None].to(device.device)
    with torch.inference_mode():
        logits = sliding_window_inference(tensor, roi, sw_batch_size, predictor, overlap=overlap,
                                          mode="gaussian", padding_mode="replicate")
        probs = torch.softmax(logits, dim=1)[0]
    return probs.cpu().numpy()


def labels_from_probabilities(probs: np.ndarray) -> np.ndarray:
    """Label map (K, J, I) uint8 from class scores (C, K, J, I): the index of the largest score.

    The same as ``probs.argmax(axis=0)`` (ties go to the lower class; NaN counts as largest), but
    one class at a time: numpy's argmax along the first axis of a C-contiguous array steps
    through memory C values apart and is 2-4x slower on a CT-sized grid.
    """
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[0] > 256:
        raise InputError(f"expected class scores (C <= 256, K, J, I), got shape {probs.shape}")
    best = probs[0].copy()
    labels = np.zeros(probs.shape[1:], np.uint8)
    for c in range(1, probs.shape[0]):
        better = probs[c] > best
        labels[better] = c
        np.maximum(best, probs[c], out=best)
    if np.isnan(best).any():  # NaN scores: numpy's own rule
        return probs.argmax(axis=0).astype(np.uint8)
    return labels
