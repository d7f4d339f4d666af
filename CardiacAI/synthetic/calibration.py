"""HU calibration of the synthetic generator against real chest CT.

The real LIDC-IDRI scans have no labels, so tissue statistics are measured in small spherical
regions of interest (ROIs) placed by hand on rendered slices and recorded, as LPS coordinates (mm)
and radius (mm), in ``calibration_rois.json`` beside this module: the measurement is reproducible
and reviewable. ``measure_rois`` gives the median and interquartile range (IQR) of HU per tissue;
``benchmarks/calibrate_hu.py`` writes them to ``hu_calibration.json``, from which the routine chest
protocols take their HU (see ``physics.tissue_ranges``), and compares generated scans.

On synthetic cases the same statistics are measured on the anatomy labels (``synthetic_stats``),
eroded so that partial volume at boundaries does not enter, mirroring ROIs placed inside a
tissue.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Image
from .anatomy_labels import ANATOMY_LABELS

#: Calibrated tissue classes -> anatomy labels that stand for them in synthetic cases.
TISSUE_LABELS = {
    "blood": ("aorta",),
    "myocardium": ("left_ventricle_myocardium",),
    "fat": ("subcutaneous_fat",),
    "lung": ("lung",),
    "bone": ("vertebra",),
    "muscle": ("muscle",),
}

#: Which real scan calibrates which protocol.
PROTOCOL_SCANS = {"chest_contrast": "LIDC-IDRI-0001", "chest_noncontrast": "LIDC-IDRI-0002"}


def load_rois() -> dict:
    """The hand-placed ROIs: {scan: {"description": ..., "rois": [{tissue, center_lps_mm, radius_mm, note}]}}."""
    return json.loads(resources.files(__package__).joinpath("calibration_rois.json").read_text())


def roi_mask(image: Image, center_lps_mm, radius_mm: float) -> np.ndarray:
    """Boolean mask (K, J, I) of voxels whose centre lies within ``radius_mm`` of an LPS point.

    Raises InputError when the sphere contains no voxel centre (outside the volume)."""
    lps_to_ijk = np.linalg.inv(image.ijk_to_lps)
    centre_ijk = (lps_to_ijk @ np.append(np.asarray(center_lps_mm, float), 1.0))[:3]
    half = np.ceil(radius_mm / np.asarray(image.spacing)) + 1
    lo = np.maximum(np.floor(centre_ijk - half), 0).astype(int)
    hi = np.minimum(np.ceil(centre_ijk + half) + 1, image.shape_ijk).astype(int)
    mask = np.zeros(image.array.shape, dtype=bool)
    if np.any(hi <= lo):
        raise InputError(f"ROI at {list(center_lps_mm)} mm lies outside the image")
    ii, jj, kk = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij")
    ijk = np.stack([ii, jj, kk, np.ones_like(ii)], axis=-1).reshape(-1, 4).T
    lps = (image.ijk_to_lps @ ijk)[:3].T
    inside = np.linalg.norm(lps - np.asarray(center_lps_mm, float), axis=1) <= radius_mm
    sel = ijk[:3, inside].astype(int)
    mask[sel[2], sel[1], sel[0]] = True
    if not mask.any():
        raise InputError(f"ROI at {list(center_lps_mm)} mm with radius {radius_mm} mm contains no voxel centre")
    return mask


def stats(values: np.ndarray) -> dict:
    """Median, quartiles and IQR (HU) and voxel count of a sample."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1), "n": int(np.size(values))}


def measure_rois(image: Image, rois: list[dict]) -> dict:
    """HU statistics per tissue class over the union of that tissue's ROIs."""
    out: dict = {}
    by_tissue: dict[str, list] = {}
    for roi in rois:
        mask = roi_mask(image, roi["center_lps_mm"], roi["radius_mm"])
        by_tissue.setdefault(roi["tissue"], []).append(image.array[mask].astype(float))
    for tissue, parts in by_tissue.items():
        out[tissue] = stats(np.concatenate(parts))
    return out


#: Erosion (mm) before measuring a synthetic tissue: 2 mm leaves partial-volume boundary voxels
#: out; bone takes 4 mm so that, like the real ROIs in the vertebral body, it measures marrow and
#: not the cortex.
EROSION_MM = {"bone": 4.0}


def synthetic_stats(image: Image, anatomy: Image, erosion_mm: float = 2.0) -> dict:
    """HU statistics per calibrated tissue on a synthetic case, over its anatomy labels eroded by
    ``erosion_mm`` (``EROSION_MM`` for bone), so that partial-volume boundary voxels are left out,
    like an ROI placed inside the tissue. Tissues with no voxel left are omitted."""
    out = {}
    for tissue, keys in TISSUE_LABELS.items():
        mask = np.isin(anatomy.array, [ANATOMY_LABELS[k] for k in keys])
        if not mask.any():
            continue
        # erosion in mm (anisotropic voxels): keep voxels deeper than the margin
        box = tuple(slice(int(w.min()), int(w.max()) + 1) for w in np.nonzero(mask))
        depth = ndimage.distance_transform_edt(np.pad(mask[box], 1), sampling=image.spacing[::-1])[1:-1, 1:-1, 1:-1]
        mask = np.zeros_like(mask)
        mask[box] = depth > EROSION_MM.get(tissue, erosion_mm)
        if mask.any():
            out[tissue] = stats(image.array[mask])
    return out


def noise_sigma_from_rois(measured: dict) -> float:
    """Noise standard deviation (HU) estimated from the IQRs of the homogeneous soft tissues
    (fat, muscle): for Gaussian noise IQR = 1.349 sigma."""
    iqrs = [measured[t]["iqr"] for t in ("fat", "muscle") if t in measured]
    return float(np.median(iqrs) / 1.349) if iqrs else 0.0


def read_real_scan(folder: str | Path) -> Image:
    """Read a DICOM series folder as an Image (HU), with ``CardiacAI.io.read_image`` when it is
    available, else SimpleITK's GDCM series reader (rescale slope/intercept applied)."""
    try:
        from ..io import read_image  # type: ignore[attr-defined]
    except ImportError:
        read_image = None
    if read_image is not None:
        return read_image(folder)
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    if not files:
        raise InputError(f"no DICOM series found in {folder}", "give the folder holding the series' .dcm files")
    reader.SetFileNames(files)
    return Image.from_sitk(reader.Execute(), modality="CT", metadata={"source": str(folder)})
