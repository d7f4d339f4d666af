"""One-click segmentation of a CT: model catalog -> inference -> post-processing -> outputs.

``segment(image, task)`` runs the task's default catalog model (or a named one) and returns a
:class:`SegmentationResult` on exactly the input grid; ``write_outputs`` writes the output folder
``cardiacai segment`` produces:

* ``segmentation.nii.gz``: multilabel map (uint8, label-set values), geometry of the input;
* ``segmentation.seg.nrrd``: Slicer segmentation, one named, coloured, SNOMED-coded segment per structure;
* ``labels.json``: value -> key, name, colour, codes, and whether the structure was found (with reason);
* ``measurements.csv``: per structure volume (mL), LV myocardial mass (g), HU mean and SD;
* ``overview.png``: axial, coronal and sagittal slices with coloured contours;
* ``run.json``: model id/version, device and why, timings, CardiacAI version, input description.

Two-stage models (catalog field ``localizer``) follow the whole-heart Dense V-Net paper: a coarse
model of the same task runs on the whole scan, the bounding box of what it finds plus a margin is
cropped, and the main model segments only that region of interest. One-stage models with a catalog
field ``midline_band_mm`` (IMA/aorta) segment the body's bounding box narrowed to a left-right band around
the body's midline (:func:`midline_band`), and the whole box when a structure reaches the band's side.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .coordinates import array_axis_along
from .errors import InputError, OperationCancelled
from .image import Image, check_ct_volume
from .inference import (
    ProgressCallback,
    choose_device,
    in_inference_layout,
    labels_from_probabilities,
    labels_from_probabilities_onto,
    sliding_window_logits,
)
from .io.atomic import atomic_output
from .labels import LabelSet, get_label_set
from .postprocess import Presence

#: The tasks ``segment`` offers, and the catalog / label-set name of each.
TASKS = ("whole-heart", "ima-aorta")
#: Key of the structure whose mass is reported (g, at 1.05 g/mL).
MYOCARDIUM_KEY = "left_ventricle_myocardium"


@dataclasses.dataclass
class SegmentationResult:
    """What one segmentation run produced.

    Attributes
    ----------
    task: "whole-heart" or "ima-aorta".
    labelmap: uint8 label map (Image) on exactly the input CT's grid, values of ``label_set``.
    label_set: the task's structures (names, colours, SNOMED CT codes).
    presence: structure key -> :class:`CardiacAI.postprocess.Presence` (found or absent, and why).
    measurements: one dict per structure: key, name, value, present, reason, volume_ml, mass_g
        (LV myocardium only), hu_mean, hu_sd (HU of the input CT inside the structure).
    run: provenance: model id/version, device and why, seconds per stage, CardiacAI version.
    """

    task: str
    labelmap: Image
    label_set: LabelSet
    presence: dict[str, Presence]
    measurements: list[dict[str, Any]]
    run: dict[str, Any]


def import_inference_libraries(*, freeze: bool = False) -> float:
    """Import PyTorch, MONAI and :mod:`CardiacAI.networks`; return the seconds it took (about 0 once imported).

    freeze: import with the cyclic garbage collector paused, then move every object then alive out of its
        reach (:func:`gc.freeze`), for a process that segments and then exits (the command line).
        Importing PyTorch and MONAI creates about 280 000 objects the collector tracks, which live until the
        process ends, and every full collection, during the import and after it, walks them all: 0.5-0.6 s of
        a 6 s IMA/aorta run on LIDC-IDRI-0001 on 2 CPU cores. Pausing alone only defers that work, freezing
        alone comes after the import's own collections: it takes both. A host application that stays open
        (Slicer) leaves it False: freezing is process-wide and would also pin the host's own objects.

    Raises ImportError when PyTorch or MONAI is not installed (``bash scripts/setup.sh``; in Slicer the module
    installs them on first use); the collector is left as it was.
    """
    import gc

    start = time.perf_counter()
    collecting = gc.isenabled()
    if freeze:
        gc.disable()
    try:
        from . import networks  # noqa: F401  (torch and MONAI)
    finally:
        if freeze:
            gc.freeze()
            if collecting:
                gc.enable()
    return time.perf_counter() - start


def load_network(entry, device: str = "cpu"):
    """Build the network a catalog entry describes and load its checked weights (eval mode).

    On the CPU the weights are kept channels-last (NDHWC), the memory format oneDNN's 3D convolutions run
    fastest in (:func:`CardiacAI.inference.in_inference_layout`).

    Raises ModelError when the weights are missing, fail their sha256 check, or do not fit.
    """
    import torch

    from .errors import ModelError
    from .networks import build_network

    path = entry.weights_path()
    net = build_network(entry.architecture, entry.in_channels, entry.out_channels, **entry.architecture_params)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        net.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ModelError(f"the weights {path} of model '{entry.id}' {entry.version} do not fit its network: {exc}",
                         "re-download the model or reinstall CardiacAI") from None
    return in_inference_layout(net.to(device).eval(), device)


#: Margin (mm) around the body's bounding box when a task without a localiser crops the scan to it.
BODY_BOX_MARGIN_MM = 5.0


#: Largest sliding window per axis at inference (voxels) unless a model's catalog entry gives its own
#: (``max_inference_window``). The networks are fully convolutional, so windows larger than the training
#: patch are valid; 96³ keeps the Dense V-Net under ~0.7 GB of RAM on the CPU while covering a cropped
#: heart region at 2 mm in one or two windows.
MAX_INFERENCE_WINDOW = 96


def inference_window(shape_kji, patch_size_kji, divisible_by: int,
                     max_window_kji: Sequence[int] | None = None) -> tuple[int, int, int]:
    """Sliding-window size (k, j, i) in voxels for a volume of ``shape_kji``: on each axis the whole volume
    rounded up to ``divisible_by`` where that is at most ``max_window_kji`` (default
    :data:`MAX_INFERENCE_WINDOW` on every axis; rounded down to ``divisible_by``), never smaller than the
    training patch ``patch_size_kji``."""
    caps = max_window_kji if max_window_kji is not None else (MAX_INFERENCE_WINDOW,) * 3
    out = []
    for size, patch, cap in zip(shape_kji, patch_size_kji, caps):
        whole = -(-int(size) // divisible_by) * divisible_by
        out.append(max(int(patch), min(whole, int(cap) // divisible_by * divisible_by)))
    return tuple(out)  # type: ignore[return-value]


def predict_labels(image: Image, entry, network, device, *, progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None, progress_range=(0.0, 1.0)) -> Image:
    """Run one catalog model on ``image`` and return its label map on ``image``'s grid (uint8).

    :func:`predict_model_grid_probabilities`, then the class probabilities trilinearly resampled
    onto the input grid and their argmax (:func:`CardiacAI.inference.labels_from_probabilities_onto`), after the
    class weights of an unenhanced scan where the model has them (:func:`unenhanced_class_weights`; the decision
    is in the result's ``metadata["contrast_decision"]``). Raises :class:`OperationCancelled` when ``cancel`` is set.
    """
    grid, probs = predict_model_grid_probabilities(image, entry, network, device, progress=progress,
                                                   cancel=cancel, progress_range=progress_range)
    model_labels = labels_from_probabilities(probs)
    weights, decision = unenhanced_class_weights(probs, grid, entry, model_labels=model_labels)
    for value, weight in weights.items():
        probs[value] *= weight
    if weights:  # the weights move the argmax
        model_labels = None
    return image.with_array(labels_from_probabilities_onto(probs, grid, image, model_labels), modality="",
                            metadata={"contrast_decision": decision} if decision else {})


def unenhanced_class_weights(probs: np.ndarray, grid: Image, entry,
                             model_labels: np.ndarray | None = None) -> tuple[dict[int, float], dict[str, Any]]:
    """The class weights a catalog model's ``unenhanced_weights`` asks for on this scan, and why.

    On a scan without contrast a thin artery is a soft-tissue dot in fat, and the network's argmax under-calls it.
    Where the model's catalog entry gives ``unenhanced_weights`` ({"reference": key, "below_hu": HU, "weights":
    {key: factor}}), the scan counts as unenhanced when the voxels the network labels as the reference structure
    (the argmax on the model grid) have a mean below ``below_hu`` (HU): enhanced blood is over 150 HU, unenhanced
    blood 30-50 HU. Then each listed structure's probability is multiplied by its factor before the argmax (a
    lower decision threshold for it); factors and threshold are chosen on synthetic tuning scans
    (docs/segmentation.md).

    Parameters
    ----------
    probs: class probabilities (C, K, J, I) on the model grid, C the label set's values including background.
    grid: the model grid (its array the resampled CT in HU), as :func:`predict_model_grid_probabilities` returns.
    entry: the catalog entry (:class:`CardiacAI.models.catalog.ModelEntry`).
    model_labels: the argmax of ``probs`` (uint8 (K, J, I)) when the caller has it already; computed here otherwise.

    Returns
    -------
    (label value -> factor, empty when nothing is weighted; the decision for the run record: reference key,
    its mean HU, whether the scan counts as unenhanced, the factors applied; empty without a rule).
    Raises nothing: without the reference structure the scan is not judged and nothing is weighted.
    """
    rule = entry.unenhanced_weights
    if not rule:
        return {}, {}
    values = {s.key: s.value for s in get_label_set(entry.label_set).structures}
    if model_labels is None:
        model_labels = labels_from_probabilities(probs)
    reference = model_labels == values[rule["reference"]]
    mean_hu = float(np.asarray(grid.array)[reference].mean()) if reference.any() else None
    unenhanced = mean_hu is not None and mean_hu < float(rule["below_hu"])
    applied = {key: float(w) for key, w in rule["weights"].items()} if unenhanced else {}
    decision = {"reference": rule["reference"], "reference_mean_hu": None if mean_hu is None else round(mean_hu, 1),
                "below_hu": float(rule["below_hu"]), "unenhanced": unenhanced, "class_weights": applied}
    return {values[key]: w for key, w in applied.items()}, decision


def predict_model_grid_labels(image: Image, entry, network, device, *, progress: ProgressCallback | None = None,
                              cancel: threading.Event | None = None, progress_range=(0.0, 1.0)) -> Image:
    """Run one catalog model on ``image`` and return its label map on the model's own grid: the argmax of
    :func:`predict_model_grid_probabilities` as a uint8 (K, J, I) array of that grid (identity LPS direction,
    the model's spacing in mm). Raises :class:`OperationCancelled` when ``cancel`` is set."""
    grid, probs = predict_model_grid_probabilities(image, entry, network, device, progress=progress,
                                                   cancel=cancel, progress_range=progress_range)
    return grid.with_array(labels_from_probabilities(probs), modality="", metadata={})


def predict_model_grid_probabilities(image: Image, entry, network, device, *,
                                     progress: ProgressCallback | None = None,
                                     cancel: threading.Event | None = None,
                                     progress_range=(0.0, 1.0)) -> tuple[Image, np.ndarray]:
    """Run one catalog model on ``image``: (the model's grid, softmax probabilities on it).

    Applies the model card's preprocessing exactly as training did (reorient to the identity LPS
    direction, resample to the model spacing, clip/normalise HU), then sliding-window inference with
    Gaussian blending. The grid image (its array the resampled CT) has the identity LPS direction and
    the model's spacing (mm) and covers the same patient space as ``image``; the probabilities are a
    float32 array (C, K, J, I) of that grid, C the label set's values including background.
    Raises :class:`OperationCancelled` when ``cancel`` is set.
    """
    from .training.preprocessing import normalise_intensity, to_model_grid

    grid = to_model_grid(image, entry.input_spacing_mm)
    intensity = entry.intensity
    volume = normalise_intensity(grid.array, intensity["window"], intensity["output_range"])
    window = inference_window(volume.shape, entry.patch_size_kji, int(entry.card["input"].get("divisible_by", 8)),
                              entry.max_inference_window_kji)
    probs = sliding_window_logits(volume, network, roi_size=window, device=device,
                                  overlap=float(entry.card["input"].get("sliding_window_overlap", 0.25)),
                                  progress=progress, cancel=cancel, progress_range=progress_range)
    return grid, probs


def heart_region(labels: np.ndarray) -> np.ndarray:
    """The largest connected body of a localiser's foreground (all structures together), bool (K, J, I).

    The whole-heart structures touch one another, so the heart is one connected body; scattered
    false positives elsewhere (arms, abdomen) would otherwise stretch the region of interest.
    """
    from .postprocess import largest_component

    return largest_component(labels > 0)


def crop_box_around(labels: np.ndarray, spacing_ijk, margin_mm: float) -> tuple[slice, slice, slice] | None:
    """(k, j, i) index box around the non-zero voxels of ``labels`` plus ``margin_mm``; None if empty."""
    # per-axis projections: np.argwhere of a body mask (half of a 512 x 512 x 261 grid) costs 0.8 GB and 3 s
    occupied = labels > 0
    extents = []
    for axis in range(3):
        hits = np.flatnonzero(occupied.any(axis=tuple(a for a in range(3) if a != axis)))
        if hits.size == 0:
            return None
        extents.append((hits[0], hits[-1]))
    margin = np.ceil(margin_mm / np.asarray(spacing_ijk, float)[::-1]).astype(int)
    lo = np.maximum(np.array([e[0] for e in extents]) - margin, 0)
    hi = np.minimum(np.array([e[1] for e in extents]) + 1 + margin, labels.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


#: Whole-heart structures that make the heart itself; the great vessels run far beyond it.
CHAMBER_KEYS = ("left_atrium", "left_ventricle_cavity", "left_ventricle_myocardium", "right_atrium",
                "right_ventricle_cavity")


def cap_box(box: tuple[slice, slice, slice], centre_kji, spacing_ijk, max_size_kji_mm,
            shape_kji) -> tuple[slice, slice, slice]:
    """Shrink each axis of a (k, j, i) index box to at most ``max_size_kji_mm`` (3 lengths, mm) around ``centre_kji``.

    An axis already within its limit is kept as it is; a longer one becomes the window of that length
    centred on the centre voxel, shifted to stay inside both the box and the image ``shape_kji``.
    """
    out = []
    for sl, c, step, n, size in zip(box, centre_kji, np.asarray(spacing_ijk, float)[::-1], shape_kji, max_size_kji_mm):
        width = int(np.ceil(float(size) / step))
        if sl.stop - sl.start <= width:
            out.append(sl)
            continue
        lo = int(round(c - width / 2))
        lo = min(max(lo, sl.start), sl.stop - width)
        out.append(slice(max(lo, 0), min(lo + width, n)))
    return tuple(out)  # type: ignore[return-value]


def max_size_on_index_axes(max_size_lps_mm, direction) -> tuple[float, float, float]:
    """(k, j, i) lengths (mm) from lengths along the patient axes (L-R, A-P, S-I) or one length for all.

    Each index axis takes the length of the patient axis its direction (a column of the 3x3
    ``direction``, LPS) is closest to, so the cap means the same on axial, coronal or oblique scans.
    """
    sizes = np.broadcast_to(np.asarray(max_size_lps_mm, float), (3,))
    nearest = np.abs(np.asarray(direction, float)).argmax(axis=0)  # per index axis i, j, k: the LPS axis
    return tuple(float(sizes[nearest[n]]) for n in (2, 1, 0))  # type: ignore[return-value]


def region_of_interest(coarse: np.ndarray, label_set: LabelSet, spacing_ijk, margin_mm: float,
                       max_size_mm=None, direction=None) -> tuple[slice, slice, slice] | None:
    """The (k, j, i) index box the second stage segments, from a localiser's label map (K, J, I).

    The bounding box of the largest connected body of the localiser's labels (:func:`heart_region`)
    plus ``margin_mm``. With ``max_size_mm`` (one length, or three along L-R, A-P and S-I, in mm;
    ``direction`` is the image's 3x3 LPS direction, identity by default) each axis is capped at that
    length around the centroid of the chambers (:data:`CHAMBER_KEYS`) inside that body. The cap
    follows the whole-heart paper, whose localiser centres a fixed-size region on the aortic valve:
    a localiser that bleeds into the liver or the neck then still gives a box that holds the heart
    and stays small enough to segment in seconds. None when the localiser found nothing.
    """
    body = heart_region(coarse)
    box = crop_box_around(body, spacing_ijk, margin_mm)
    if box is None or max_size_mm is None:
        return box
    chamber_values = [s.value for s in label_set.structures if s.key in CHAMBER_KEYS]
    chambers = body & np.isin(coarse, chamber_values)
    centre = np.argwhere(chambers if chambers.any() else body).mean(axis=0)
    sizes = max_size_on_index_axes(max_size_mm, np.eye(3) if direction is None else direction)
    return cap_box(box, centre, spacing_ijk, sizes, coarse.shape)


def box_onto_grid(box: tuple[slice, slice, slice], source: Image, target: Image) -> tuple[slice, slice, slice] | None:
    """The (k, j, i) index box of ``target`` that covers the (k, j, i) index box ``box`` of ``source``.

    The two images may differ in spacing, origin and direction (e.g. a model's grid and the scan):
    the eight corners of the box's outer voxel faces are taken to LPS (mm) and into ``target``'s
    continuous indices, and every voxel of ``target`` whose centre lies within their bounds is kept,
    clipped to ``target``'s extent. None when the box lies wholly outside ``target``; raises nothing.
    """
    lo = np.array([box[2].start, box[1].start, box[0].start], float) - 0.5  # i, j, k
    hi = np.array([box[2].stop, box[1].stop, box[0].stop], float) - 0.5
    corners = np.array([[c[0], c[1], c[2], 1.0] for c in itertools.product(*zip(lo, hi))])
    lps = corners @ source.ijk_to_lps.T
    ijk = lps @ np.linalg.inv(target.ijk_to_lps).T
    first = np.maximum(np.ceil(ijk[:, :3].min(axis=0) - 1e-6), 0).astype(int)
    last = np.minimum(np.floor(ijk[:, :3].max(axis=0) + 1e-6), np.array(target.shape_ijk) - 1).astype(int)
    if np.any(last < first):
        return None
    return tuple(slice(int(first[a]), int(last[a]) + 1) for a in (2, 1, 0))  # type: ignore[return-value]


def left_right_axis(direction) -> int:
    """The array axis (0 = k, 1 = j, 2 = i of a (K, J, I) array) whose index direction is closest to the
    patient's left-right axis (LPS x), for an image's 3x3 LPS ``direction`` (columns: i, j, k)."""
    return array_axis_along(direction, 0)[0]


def body_midline_index(body: np.ndarray, box: tuple[slice, slice, slice], direction) -> int | None:
    """The body's midline: the index on the left-right axis (:func:`left_right_axis`) that has half of the
    body's voxels inside ``box`` on each side. ``body``: bool (K, J, I); ``box``: a (k, j, i) index box;
    ``direction``: the image's 3x3 LPS direction. None when the box holds no body; raises nothing."""
    axis = left_right_axis(direction)
    profile = np.count_nonzero(body[box], axis=tuple(a for a in range(3) if a != axis))
    cumulative = np.cumsum(profile)
    if cumulative.size == 0 or cumulative[-1] == 0:
        return None
    return box[axis].start + int(np.searchsorted(cumulative, cumulative[-1] / 2))


def midline_band(body: np.ndarray, box: tuple[slice, slice, slice], spacing_ijk, direction,
                 width_mm: float, *, centre: int | None = None) -> tuple[slice, slice, slice]:
    """``box`` narrowed on the left-right axis to ``width_mm`` centred on the body's midline.

    ``body`` is the body mask, bool (K, J, I); ``box`` a (k, j, i) index box (e.g. the body's bounding
    box); ``spacing_ijk`` the voxel size (i, j, k) in mm; ``direction`` the image's 3x3 LPS direction;
    ``width_mm`` the band's width in mm; ``centre`` the midline's index on the left-right axis when the
    caller already has it from :func:`body_midline_index` on the same ``body`` and ``box`` (found here
    otherwise). Returns a (k, j, i) index box; raises nothing (an empty body gives ``box`` back). The midline is the median of the body's voxels
    along the left-right axis inside ``box`` (half of the body on each side), which stays on the sternum
    and the spine when an arm lies beside the chest. The band is clipped to ``box``, never moved off the
    midline. The IMAs and the thoracic aorta lie within about 65 mm of the midline (the generator's
    test scans: -63 to +50 mm), so a 200 mm band holds them with a margin while the network skips the
    lateral chest wall and the arms.
    """
    axis = left_right_axis(direction)
    if centre is None:
        centre = body_midline_index(body, box, direction)
    if centre is None:
        return box
    half = int(np.ceil(width_mm / 2 / float(np.asarray(spacing_ijk, float)[2 - axis])))
    narrowed = list(box)
    narrowed[axis] = slice(max(box[axis].start, centre - half), min(box[axis].stop, centre + half + 1))
    return tuple(narrowed)  # type: ignore[return-value]


#: Voxels next to a side of the midline band in which a structure makes the pipeline segment the whole
#: body instead (the structure may go on beyond the band).
BAND_SIDE_VOXELS = 2


def reaches_band_side(labels: np.ndarray, band: tuple[slice, slice, slice], outer: tuple[slice, slice, slice],
                      axis: int) -> bool:
    """True when a structure of ``labels`` (the cleaned label map on the ``band`` crop, (K, J, I)) has
    its largest connected piece within :data:`BAND_SIDE_VOXELS` of a side of ``band`` on ``axis`` that
    is not also a side of the ``outer`` box, i.e. where the band cut the scan and the structure may go
    on beyond it. Smaller pieces at the side (false positives in the lateral chest wall, on
    LIDC-IDRI-0002 two aorta pieces of 4.5 and 10.5 mL beside the 89 mL aorta) do not count."""
    from .postprocess import largest_component

    n = labels.shape[axis]
    edge = min(BAND_SIDE_VOXELS, n)
    sides = []
    if band[axis].start > outer[axis].start:
        sides.append(slice(0, edge))
    if band[axis].stop < outer[axis].stop:
        sides.append(slice(n - edge, n))
    at_side = np.zeros(labels.shape, bool)
    for side in sides:
        index = [slice(None)] * 3
        index[axis] = side
        at_side[tuple(index)] = True
    for value in np.unique(labels[at_side]):
        if value == 0:
            continue
        largest = largest_component(labels == value, np.ones((3, 3, 3), bool))
        if (largest & at_side).any():
            return True
    return False


def crop_image(image: Image, box: tuple[slice, slice, slice]) -> Image:
    """The sub-volume ``image.array[box]`` with its origin moved so every voxel keeps its LPS position."""
    k0, j0, i0 = (s.start for s in box)
    origin = (image.ijk_to_lps @ [i0, j0, k0, 1.0])[:3]
    return Image(image.array[box], spacing=image.spacing, origin=tuple(origin), direction=image.direction,
                 modality=image.modality, metadata=dict(image.metadata))


def measure_structures(image: Image, labelmap: Image, label_set: LabelSet,
                       presence: dict[str, Presence]) -> list[dict[str, Any]]:
    """Per-structure volume (mL), LV myocardial mass (g, 1.05 g/mL) and HU mean/SD of the input CT."""
    from .metrics import myocardial_mass_g
    from .postprocess import label_boxes

    lab = labelmap.array
    hu = image.array
    # Each structure inside its own bounding box: the same voxels, in the same order, as a
    # comparison over the whole grid, at a fraction of the cost.
    boxes = label_boxes(lab, max(label_set.values))
    rows = []
    for s in label_set.structures:
        box = boxes[s.value - 1] if 0 < s.value <= len(boxes) else None
        values = hu[box][lab[box] == s.value] if box is not None else np.empty(0)
        n = int(values.size)
        volume = n * image.voxel_volume_ml
        p = presence.get(s.key)
        rows.append({
            "key": s.key,
            "name": s.name,
            "value": s.value,
            "present": bool(p.present) if p else n > 0,
            "reason": (p.reason or "") if p else "",
            "volume_ml": round(volume, 3),
            "mass_g": round(myocardial_mass_g(volume), 2) if s.key == MYOCARDIUM_KEY else None,
            "hu_mean": round(float(values.mean()), 1) if n else None,
            "hu_sd": round(float(values.std()), 1) if n else None,
        })
    return rows


def segment(image: Image, task: str, *, model_id: str | None = None, version: str | None = None,
            catalog=None, prefer_gpu: bool = True, progress: ProgressCallback | None = None,
            cancel: threading.Event | None = None) -> SegmentationResult:
    """Segment a CT for ``task`` with a catalog model; the result is on exactly the input grid.

    Parameters
    ----------
    image: the CT (HU, any orientation, any spacing).
    task: one of :data:`TASKS`.
    model_id, version: a specific catalog model; default the task's default model.
    catalog: a :class:`CardiacAI.models.ModelCatalog`; default the packaged one.
    prefer_gpu: use CUDA (with mixed precision) when present.
    progress: called with (fraction 0..1, message) as the run advances.
    cancel: set it to stop; :class:`OperationCancelled` is raised and nothing is returned.

    Raises
    ------
    InputError: unknown task, or an image that is not a usable CT.
    ModelError: no model for the task, or missing/corrupt weights.
    OperationCancelled: ``cancel`` was set.
    """
    from .models import ModelCatalog
    from .lumen_tracking import AORTA_FOLLOWERS, TrackingSettings, draw_enhanced_aorta_lumen, follow_thin_arteries
    from .lumen_trim import trim_to_enhanced_lumen
    from .perivascular import add_perivascular_regions
    from .postprocess import (body_mask_from_ct, clean_labelmap, keep_components_overlapping, remove_branches_above,
                              remove_pieces_behind_lung, remove_pieces_in_bone, remove_pieces_off_midline,
                              structure_presence)

    if task not in TASKS:
        raise InputError(f"unknown segmentation task '{task}'", f"choose one of: {', '.join(TASKS)}")
    check_ct_volume(image)
    report = progress or (lambda fraction, message: None)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    def check_cancel():
        if cancel is not None and cancel.is_set():
            raise OperationCancelled("segmentation cancelled by the user", "nothing was written")

    catalog = catalog or ModelCatalog.load()
    entry = catalog.get(model_id, version) if model_id else catalog.default_for(task)
    if entry.task != task:
        raise InputError(f"model '{entry.id}' is for the task '{entry.task}', not '{task}'",
                         f"pick a model of the task '{task}' or leave the model unset")
    label_set = get_label_set(entry.label_set)
    t = time.perf_counter()
    device = choose_device(prefer_gpu)
    import_inference_libraries()  # timed apart from the model itself
    timings["import_libraries_s"] = time.perf_counter() - t
    report(0.02, f"loading model {entry.id} {entry.version} on {device.reason}")
    t = time.perf_counter()
    network = load_network(entry, device.device)
    stages = []
    timings["load_model_s"] = time.perf_counter() - t

    box = body_box = None
    midline = None  # the body's midline index on the left-right axis, for a task with a midline band
    body_full = None  # the body on the whole grid, when it has been found
    if entry.localizer:
        loc_entry = catalog.get(entry.localizer["model"], entry.localizer.get("version"))
        loc_net = load_network(loc_entry, device.device)
        t = time.perf_counter()
        # The region is found on the localiser's own coarse grid and only its box is taken to the scan:
        # resampling the coarse labels onto a 512 x 512 x 133 scan and labelling them there cost 0.3 s.
        coarse = predict_model_grid_labels(image, loc_entry, loc_net, device, progress=report, cancel=cancel,
                                           progress_range=(0.05, 0.25))
        timings["localize_s"] = time.perf_counter() - t
        stages.append({"stage": "localize", "model": loc_entry.id, "version": loc_entry.version})
        coarse_box = region_of_interest(coarse.array, label_set, coarse.spacing,
                                        float(entry.localizer.get("margin_mm", 20.0)),
                                        entry.localizer.get("max_size_mm"), coarse.direction)
        box = None if coarse_box is None else box_onto_grid(coarse_box, coarse, image)
    else:
        # Without a localiser the network would spend a third of its time on air and the table:
        # run it on the body's bounding box. The body on the whole grid is needed later anyway.
        t = time.perf_counter()
        body_full = body_mask_from_ct(image)
        box = crop_box_around(body_full, image.spacing, BODY_BOX_MARGIN_MM)
        body_box = box
        if box is not None and entry.midline_band_mm:
            # found once: the band is centred on it and the midline rule below measures from it
            midline = body_midline_index(body_full, box, image.direction)
            box = midline_band(body_full, box, image.spacing, image.direction, entry.midline_band_mm,
                               centre=midline)
        timings["body_s"] = time.perf_counter() - t
    check_cancel()

    contrast: dict[str, Any] | None = None  # the unenhanced-scan decision of the last region segmented
    tracking: dict[str, Any] = {}  # what lumen tracking did, per structure, in the last region segmented

    def segment_region(box, progress_range):
        """(labels on the whole grid, the box holding them): the network's labels inside ``box`` (None: the
        whole scan), restricted to the body and cleaned per structure, and the aorta its followers drew, which
        may run on beyond ``box`` along the long axis (the box is then grown to the scan's ends along it);
        background elsewhere. The network's progress fills ``progress_range``; its post-processing is
        reported at the end."""
        nonlocal contrast
        t = time.perf_counter()
        region = image if box is None else crop_image(image, box)
        fine = predict_labels(region, entry, network, device, progress=report, cancel=cancel,
                              progress_range=progress_range)
        if "contrast_decision" in fine.metadata:
            contrast = fine.metadata["contrast_decision"]
        timings["segment_s"] = timings.get("segment_s", 0.0) + time.perf_counter() - t
        check_cancel()
        report(progress_range[1], "post-processing")
        t = time.perf_counter()
        labels = np.zeros(image.array.shape, np.uint8)
        roi = box if box is not None else (slice(None),) * 3
        labels[roi] = fine.array
        # Every structure of both tasks lies inside the patient: what a network finds in the air, the
        # table or the reconstruction padding is dropped before the per-structure clean-up. With a region
        # of interest the body is found in it alone (4x faster on a 512 x 512 x 261 scan); lung that
        # reaches the region's edge then counts as outside too, which no structure of the task lies in.
        body = body_full[roi] if body_full is not None else body_mask_from_ct(region)
        labels[roi][~body] = 0
        # before the run-length rule, so that a pulmonary vessel or the sternum never lengthens an IMA's run
        labels[roi] = remove_pieces_behind_lung(labels[roi], label_set, region.array, body, image.spacing,
                                                image.direction)
        labels[roi] = remove_pieces_in_bone(labels[roi], label_set, region.array, image.spacing)
        long_axis = array_axis_along(image.direction, 2)[0]
        labels[roi] = clean_labelmap(labels[roi], label_set, image.spacing, long_axis=long_axis)
        slice_mm = float(np.asarray(image.spacing)[::-1][long_axis])
        rules = entry.lumen_tracking or {}  # the vessels redrawn from the scan after the network
        if rules.get("structures"):
            # the network finds stretches of a thin enhanced artery: follow its lumen from them
            settings = TrackingSettings(redraw=bool(rules.get("redraw", True)))
            labels[roi], reports = follow_thin_arteries(labels[roi], label_set, region.array, image.spacing,
                                                        long_axis=long_axis, keys=rules["structures"], settings=settings)
            tracking.update({key: r.as_dict(slice_mm) for key, r in reports.items()})
        if rules.get("enhanced_lumen_trim"):
            # the network may draw an enhanced vein too wide, into the fat around it (the whole-heart coronary sinus)
            labels[roi], trims = trim_to_enhanced_lumen(labels[roi], label_set, region.array, image.spacing,
                                                        keys=rules["enhanced_lumen_trim"])
            tracking["enhanced_lumen_trim"] = {key: r.as_dict() for key, r in trims.items()}
        followers = {part: follow for part, follow in AORTA_FOLLOWERS.items() if rules.get(part)}
        if followers and box is not None:
            # The aorta runs on beyond a region of interest around the heart (the whole-heart model's region ends
            # above the diaphragm): its followers work on the region grown to the scan's ends along the long axis.
            roi = tuple(slice(0, n) if axis == long_axis else s for axis, (s, n) in enumerate(zip(roi, labels.shape)))
        roi_hu = image.array[roi]
        for part, follow in followers.items():
            # the network may stop the aorta at the diaphragm while the enhanced lumen runs on down the abdomen,
            # or (unenhanced) leave gaps in the descending aorta, draw it thin, and find only a core of the ascending
            key = rules[part]
            labels[roi], aorta_report = follow(labels[roi], label_set, roi_hu, image.spacing, image.direction, key=key)
            tracking[part] = {"structure": key, **aorta_report.as_dict(slice_mm)}
        for key in rules.get("enhanced_lumen_widen", []):
            # a large enhanced vessel the network draws as a core inside its lumen, as the aorta (the whole-heart SVC);
            # after the aorta, which keeps the voxels the two might both take
            labels[roi], widen_report = draw_enhanced_aorta_lumen(labels[roi], label_set, roi_hu, image.spacing,
                                                                  image.direction, key=key)
            tracking.setdefault("enhanced_lumen_widen", {})[key] = widen_report.as_dict(slice_mm)
        # after the followers have drawn the aorta at its width: a narrower piece above its arch is a branch
        labels[roi] = remove_branches_above(labels[roi], label_set, image.spacing, image.direction)
        timings["postprocess_s"] = timings.get("postprocess_s", 0.0) + time.perf_counter() - t
        return labels, roi

    labels, roi = segment_region(box, (0.25 if entry.localizer else 0.05, 0.8))
    region_name = ("whole scan" if box is None else "localised heart" if entry.localizer
                   else "body" if box == body_box else "midline band")
    if region_name == "midline band" and reaches_band_side(labels[box], box, body_box, left_right_axis(image.direction)):
        # a structure runs on beyond the band (an unusually lateral vessel): segment the whole body
        # rather than return it cut at the band's side
        # the progress bar never goes back: the second pass fills what is left before the regions
        report(0.8, "a structure reaches the side of the midline band: segmenting the whole body")
        band, box = box, body_box
        labels, roi = segment_region(box, (0.8, 0.9))
        # the whole body completes what crosses the band's side; what lies wholly outside the band
        # (a piece in an arm or the lateral chest wall) is not a structure of the task
        labels = keep_components_overlapping(labels, band)
        region_name = "body (a structure reached the side of the midline band)"
    stages.append({"stage": "segment", "model": entry.id, "version": entry.version, "region": region_name,
                   "region_kji": None if box is None else [[s.start, s.stop] for s in box]})
    check_cancel()
    t = time.perf_counter()
    if midline is not None:
        # the band's structures lie near the midline: a piece far to the side is something else
        # (every label lies in the region the network ran on, or its followers: work there, not on the whole grid)
        axis = left_right_axis(image.direction)
        labels[roi] = remove_pieces_off_midline(labels[roi], label_set, midline - (roi[axis].start or 0), axis,
                                                image.spacing)
    min_volume_ml = entry.min_volume_ml or 0.0
    presence = structure_presence(image.with_array(labels), label_set, image, min_volume_ml=min_volume_ml)
    # A structure judged absent is reported with its reason and found volume but not drawn: the result
    # shows nothing the pipeline does not stand behind (its empty segment is there to paint into).
    rejected = [s.value for s in label_set.structures if not presence[s.key].present and presence[s.key].volume_ml > 0]
    if rejected:
        labels[roi][np.isin(labels[roi], rejected)] = 0
    derived = any(s.derived_from for s in label_set.structures)
    if derived:
        # derived regions follow the vessels as they now are; their presence is judged on the result
        if body_full is None:  # the perivascular regions need the body on the whole grid
            body_full = body_mask_from_ct(image)
        labels = add_perivascular_regions(image.with_array(labels), label_set, body_full).array
        presence.update(structure_presence(image.with_array(labels), label_set, image, min_volume_ml=min_volume_ml,
                                           keys=[s.key for s in label_set.structures if s.derived_from]))
    labelmap = image.with_array(labels.astype(np.uint8), modality="", metadata={"task": task})
    # The perivascular regions reach up to one vessel diameter beyond the region the network ran on:
    # measure them on the whole grid (each structure is still measured inside its own bounding box).
    measurements = (measure_structures(image, labelmap, label_set, presence) if box is None or derived
                    else measure_structures(crop_image(image, roi), crop_image(labelmap, roi), label_set, presence))
    timings["postprocess_s"] += time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_start
    report(1.0, "done")
    run = {
        "cardiacai_version": __version__,
        "task": task,
        "model": {"id": entry.id, "version": entry.version, "title": entry.title,
                  "sha256": entry.sha256, "architecture": entry.architecture},
        "stages": stages,
        "device": device.device,
        "device_reason": device.reason,
        "mixed_precision": device.mixed_precision,
        "precision": device.autocast_dtype or "float32",
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        **({"contrast_decision": contrast} if contrast else {}),
        **({"lumen_tracking": tracking} if tracking else {}),
        "input": {
            "source": str(image.metadata.get("source_path", "")),
            "series_instance_uid": image.metadata.get("series_instance_uid"),
            "size_ijk": list(image.shape_ijk),
            "spacing_mm": list(image.spacing),
        },
    }
    return SegmentationResult(task, labelmap, label_set, presence, measurements, run)


def models_for_tasks(tasks: Sequence[str], model_ids: Sequence[str] = (), catalog=None) -> dict[str, str | None]:
    """Which catalog model each task of a run uses: task -> model id (None: the task's default).

    For runs of several tasks on one scan (``cardiacai segment --task whole-heart --task ima-aorta``):
    every id in ``model_ids`` names a model of one of ``tasks`` and is used for that task; tasks
    without one get their default. Returns a dict in the order of ``tasks``.

    Raises
    ------
    InputError: no task, an unknown task, a task given twice, a model of a task not in ``tasks``, or
        two models for one task.
    ModelError: an id the catalog does not have (listing those it has).
    """
    if not tasks:
        raise InputError("no segmentation task was given", f"choose one or more of: {', '.join(TASKS)}")
    chosen: dict[str, str | None] = {}
    for task in tasks:
        if task not in TASKS:
            raise InputError(f"unknown segmentation task '{task}'", f"choose one or more of: {', '.join(TASKS)}")
        if task in chosen:
            raise InputError(f"the task '{task}' was given twice", "give each task once")
        chosen[task] = None
    if model_ids:
        if catalog is None:
            from .models import ModelCatalog

            catalog = ModelCatalog.load()
        for model_id in model_ids:
            task = catalog.get(model_id).task
            if task not in chosen:
                raise InputError(f"model '{model_id}' is for the task '{task}', which this run does not do",
                                 f"add --task {task}, or pick a model of the task(s) {', '.join(chosen)}")
            if chosen[task] is not None:
                raise InputError(f"two models were given for the task '{task}': '{chosen[task]}' and '{model_id}'",
                                 "give one model per task")
            chosen[task] = model_id
    return chosen


def task_output_folders(outdir: str | Path, tasks: Sequence[str]) -> dict[str, Path]:
    """Where each task of a run writes: ``outdir`` itself for one task, ``outdir/<task>`` for several
    (so each task's folder holds exactly what the task writes alone). Returns task -> folder."""
    out = Path(outdir)
    return {t: out / t if len(tasks) > 1 else out for t in tasks}


#: The files ``write_outputs`` writes into an output folder.
OUTPUT_FILES = ("segmentation.nii.gz", "segmentation.seg.nrrd", "labels.json", "measurements.csv",
                "overview.png", "run.json")


def prepare_output_folder(outdir: str | Path, *, overwrite: bool = False) -> Path | None:
    """Make ``outdir`` ready for :func:`write_outputs` without losing earlier results.

    A folder holding results of an earlier run (possibly corrected by hand) is refused unless
    ``overwrite``; then those files are moved into ``outdir/previous-<UTC time>/`` first, so there
    is always a way back. Returns that backup folder, or None when there was nothing to keep.

    Raises InputError when ``outdir`` is a file, or holds results and ``overwrite`` is False.
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"the output path {out} exists and is not a folder", "choose a folder for the results")
    existing = [out / name for name in OUTPUT_FILES if (out / name).exists()]
    if not existing:
        out.mkdir(parents=True, exist_ok=True)
        return None
    if not overwrite:
        raise InputError(
            f"the output folder {out} already holds results ({', '.join(p.name for p in existing)})",
            "choose another folder, or pass --overwrite to keep the old files in a previous-<time> subfolder",
        )
    backup = out / time.strftime("previous-%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while backup.exists():
        n += 1
        backup = out / time.strftime(f"previous-%Y%m%dT%H%M%SZ-{n}", time.gmtime())
    backup.mkdir()
    for path in existing:
        path.rename(backup / path.name)
    return backup


def write_outputs(result: SegmentationResult, image: Image, outdir: str | Path, *,
                  overview: bool = True) -> dict[str, Path]:
    """Write the output folder of a segmentation run (see the module docstring); every file atomically.

    Call :func:`prepare_output_folder` first to keep earlier results. Returns name -> path.
    Raises InputError when ``outdir`` exists and is not a folder.
    """
    # The .seg.nrrd is written directly (the fields Slicer's storage node writes): loading Slicer's
    # libraries for it would cost ~0.7 s.
    from .io import write_labelmap, write_seg_nrrd
    from .overview import render_overview

    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"the output path {out} exists and is not a folder", "choose a folder for the results")
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    # The two compressed label files are written in threads while the overview is drawn: zlib releases
    # the GIL (the write stage 0.47-0.50 -> 0.42-0.46 s on LIDC-IDRI-0001).
    pool = ThreadPoolExecutor(2)
    compressed = {
        "segmentation.nii.gz": pool.submit(write_labelmap, result.labelmap, out / "segmentation.nii.gz"),
        "segmentation.seg.nrrd": pool.submit(write_seg_nrrd, result.labelmap, result.label_set,
                                             out / "segmentation.seg.nrrd", reference=image),
    }
    pool.shutdown(wait=False)
    paths: dict[str, Path] = {}
    labels_json = result.label_set.to_labels_json()
    for row in result.measurements:
        entry = labels_json["labels"][str(row["value"])]
        entry["present"] = row["present"]
        entry["reason"] = row["reason"]
    paths["labels.json"] = _write_text(out / "labels.json", json.dumps(labels_json, indent=2) + "\n")
    paths["measurements.csv"] = _write_text(out / "measurements.csv", _measurements_csv(result.measurements))
    if overview:
        title = f"CardiacAI {result.task} ({result.run['model']['id']} {result.run['model']['version']})"
        paths["overview.png"] = render_overview(image, out / "overview.png", labelmap=result.labelmap,
                                                label_set=result.label_set, title=title)
    for name, written in compressed.items():
        paths[name] = written.result()  # raises the writer's error, if any
    run = dict(result.run)
    run["timings_s"] = dict(run["timings_s"], write_outputs_s=round(time.perf_counter() - t, 3))
    run["presence"] = {k: {"present": p.present, "volume_ml": round(p.volume_ml, 3), "reason": p.reason}
                       for k, p in result.presence.items()}
    paths["run.json"] = _write_text(out / "run.json", json.dumps(run, indent=2) + "\n")
    return paths


def _measurements_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    fields = ["key", "name", "value", "present", "reason", "volume_ml", "mass_g", "hu_mean", "hu_sd"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in fields})
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

