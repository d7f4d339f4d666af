"""Does an IMA/aorta model find a tube along the real abdominal aorta's course? A probe on LIDC-IDRI-0001.

No model has labelled LIDC-IDRI-0001's aorta below the diaphragm (``benchmarks/real_aorta_check.py``), and
replacing its surroundings showed why: with the body's interior filled with fat (its outline kept), a straight
350 HU tube is found and a tube along the real lumen's centres is not. The real lumen runs forward as it
descends (its centre 70 mm toward the front over the lowest 175 mm, about 22 degrees), with the lumbar spine.

This probe measures how much of that slant a model accepts. On the scan's lowest :data:`LOWER_SLICES` slices
(the upper abdomen and the lower chest, without the heart) it fills the body with fat (-100 HU) and paints an
18 mm, 350 HU tube in a 5 mm, 50 HU sleeve (the crura), whose centre on each slice is the real lumen's mean
centre moved by ``fraction`` of the real lumen's offset from it (0: a straight tube at the mean position; 1: the
real course), then runs the model's network on that region alone (sliding window, no pipeline) and reports the
median aorta probability inside the tube, per probed slice and averaged over the slices below the diaphragm
(:data:`BELOW_DIAPHRAGM_K`). It also reports the unmodified scan.

Usage: python benchmarks/real_aorta_probe.py [--model ID] [--catalog CATALOG.json] [--json F]
Not a test: it describes one real scan and one model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_aorta_check  # noqa: E402  (the lumen reference and the scan's location)
from model_choice import add_model_arguments, chosen_model  # noqa: E402

#: Slices probed: LIDC-IDRI-0001's lowest 70 (0-69; the aortic root's lowest slice is 60).
LOWER_SLICES = 70
#: Slices below the diaphragm (the aorta's hiatus), where no model has labelled the real aorta.
BELOW_DIAPHRAGM_K = 54
#: The region the network runs on (k, j, i) of LIDC-IDRI-0001: the lower slices, around the spine and aorta.
REGION = (slice(0, LOWER_SLICES), slice(150, 420), slice(130, 400))
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
TUBE_DIAMETER_MM, TUBE_HU, SLEEVE_MM, SLEEVE_HU, FAT_HU = 18.0, 350.0, 5.0, 50.0, -100.0
PROBED = tuple(range(5, LOWER_SLICES, 6))


def tube_along(shape_kji, centres_ji, diameter_mm: float, spacing_ji) -> np.ndarray:
    """Boolean (K, J, I) mask of a tube whose cross-section on slice k is a disk of ``diameter_mm`` (mm, in-plane)
    centred at ``centres_ji[k]`` (row, column in voxels; NaN: no tube on that slice). ``spacing_ji``: row and
    column spacing (mm)."""
    jj, ii = np.mgrid[0:shape_kji[1], 0:shape_kji[2]]
    out = np.zeros(shape_kji, dtype=bool)
    for k, (cj, ci) in enumerate(centres_ji):
        if np.isfinite(cj) and np.isfinite(ci):
            out[k] = np.hypot((jj - cj) * spacing_ji[0], (ii - ci) * spacing_ji[1]) <= diameter_mm / 2
    return out


def slanted_centres(centres_ji: np.ndarray, fraction: float) -> np.ndarray:
    """Centres (K, 2) moved toward the real course: the mean centre plus ``fraction`` of each slice's row offset
    from it (the forward slant; the column is kept at the mean). NaN rows stay NaN."""
    centres_ji = np.asarray(centres_ji, dtype=float)
    mean = np.nanmean(centres_ji, axis=0)
    out = np.empty_like(centres_ji)
    out[:, 0] = mean[0] + fraction * (centres_ji[:, 0] - mean[0])
    out[:, 1] = mean[1]
    out[np.isnan(centres_ji[:, 0])] = np.nan
    return out


def aorta_probability(image, entry, net, device) -> np.ndarray:
    """The network's aorta probability (float, 0-1; (K, J, I) on the image's grid) on ``image`` (a region of the
    scan in HU), from the catalog ``entry``'s network ``net`` run by sliding window on ``device``."""
    from CardiacAI.inference import resample_labels_onto, sliding_window_logits
    from CardiacAI.segmentation import inference_window
    from CardiacAI.training.preprocessing import normalise_intensity, to_model_grid

    grid = to_model_grid(image, entry.input_spacing_mm)
    volume = normalise_intensity(grid.array, entry.intensity["window"], entry.intensity["output_range"])
    window = inference_window(volume.shape, entry.patch_size_kji, 16)
    probabilities = sliding_window_logits(volume, net, roi_size=window, device=device, overlap=0.25)
    from CardiacAI.labels import get_label_set

    aorta = get_label_set(entry.label_set).by_key("aorta").value
    scaled = grid.with_array((probabilities[aorta] * 250).astype(np.uint8))
    return resample_labels_onto(scaled, image).array / 250.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(ap)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    if not real_aorta_check.REAL.is_dir():
        print(f"LIDC-IDRI-0001 not found at {real_aorta_check.REAL}")
        return 1
    from scipy import ndimage

    from CardiacAI.inference import choose_device
    from CardiacAI.io import read_image
    from CardiacAI.postprocess import body_mask_from_ct
    from CardiacAI.segmentation import crop_image, load_network

    image = read_image(real_aorta_check.REAL)
    hu = image.array.astype(np.float32)
    lumen = real_aorta_check.track_lumen(image.array, real_aorta_check.SEED, image.spacing)[:LOWER_SLICES]
    centres = np.full((LOWER_SLICES, 2), np.nan)
    for k in range(LOWER_SLICES):
        if lumen[k].any():
            centres[k] = np.argwhere(lumen[k]).mean(axis=0)
    _, entry = chosen_model(args)
    device = choose_device(False)
    net = load_network(entry, "cpu")
    body = body_mask_from_ct(image)[:LOWER_SLICES]
    spacing_ji = (image.spacing[1], image.spacing[0])

    region = crop_image(image, REGION)  # its geometry; each probe fills in its own HU

    def probe(volume: np.ndarray, tube: np.ndarray) -> dict:
        hu_region = np.clip(volume[:, REGION[1], REGION[2]], -1024, 3071).astype(np.int16)
        p = aorta_probability(region.with_array(hu_region), entry, net, device)
        per_slice = {k: float(np.median(p[k][tube[k, REGION[1], REGION[2]]])) for k in range(LOWER_SLICES)
                     if tube[k].any()}
        below = [v for k, v in per_slice.items() if k < BELOW_DIAPHRAGM_K]
        return {"mean_below_diaphragm": round(float(np.mean(below)), 3),
                "probed_slices": {k: round(per_slice[k], 2) for k in PROBED if k in per_slice}}

    results = {"model": entry.id, "version": entry.version, "scan": "LIDC-IDRI-0001", "tube_diameter_mm": TUBE_DIAMETER_MM,
               "as_is": probe(hu[:LOWER_SLICES], lumen), "slant": {}}
    for fraction in FRACTIONS:
        tube = tube_along(lumen.shape, slanted_centres(centres, fraction), TUBE_DIAMETER_MM, spacing_ji)
        sleeve_reach = ndimage.distance_transform_edt(~tube, sampling=(1e6,) + spacing_ji)
        volume = hu[:LOWER_SLICES].copy()
        volume[body] = FAT_HU
        volume[(sleeve_reach > 0) & (sleeve_reach <= SLEEVE_MM)] = SLEEVE_HU
        volume[tube] = TUBE_HU
        results["slant"][str(fraction)] = probe(volume, tube)
    print(f"{entry.id} {entry.version}: median aorta probability in the tube (mean over slices 0-{BELOW_DIAPHRAGM_K - 1})")
    print(f"  the scan as it is: {results['as_is']['mean_below_diaphragm']:.2f}  {results['as_is']['probed_slices']}")
    for fraction, r in results["slant"].items():
        print(f"  fat body, tube at {float(fraction):.2f} of the real slant: {r['mean_below_diaphragm']:.2f}  "
              f"{r['probed_slices']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
