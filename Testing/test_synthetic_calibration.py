"""HU calibration of the synthetic generator against the real LIDC-IDRI chest CTs.

The real scans have no labels: tissue HU is measured in hand-placed ROIs recorded in
CardiacAI/synthetic/calibration_rois.json (LPS mm + radius). These tests check that the ROIs sit
in the tissue they name, that the stored calibration is what the ROIs measure, and that generated
scans of the same kind match the real ones within the tolerances stated in docs/synthetic.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.errors import InputError
from CardiacAI.synthetic import GeneratorConfig, generate_case
from CardiacAI.synthetic import calibration as cal
from CardiacAI.synthetic.physics import load_calibration

#: Largest accepted |synthetic median - real median| (HU) per tissue: the per-case random spread
#: the generator draws around the calibrated median (blood ±20, myocardium ±10, fat ±10, lung ±25,
#: marrow ±40, muscle ±8) plus 10-20 HU for noise, texture and the small real ROIs.
MEDIAN_TOLERANCE_HU = {"blood": 35, "myocardium": 25, "fat": 20, "lung": 40, "bone": 60, "muscle": 20}
#: Accepted synthetic/real IQR ratio: real ROIs of 3-8 mm radius also hold partial volume
#: (myocardium next to contrast) and small vessels (lung), which a single tissue label does not.
IQR_RATIO = (0.4, 2.5)
#: Not IQR-compared: the real myocardium ROI of the contrast scan (a 3 mm sphere in a ~10 mm
#: septum, 2.5 mm slices) mixes in the contrast-filled cavities (IQR 60 HU); its median still is.
IQR_EXEMPT = {("chest_contrast", "myocardium")}

#: Literature HU of each tissue: an ROI outside these has been placed in the wrong tissue.
PLAUSIBLE_HU = {
    "LIDC-IDRI-0001": {"blood": (150, 600), "myocardium": (60, 200), "fat": (-150, -50), "lung": (-950, -700),
                       "bone": (100, 400), "muscle": (20, 90)},
    "LIDC-IDRI-0002": {"blood": (20, 60), "myocardium": (20, 65), "fat": (-150, -50), "lung": (-950, -700),
                       "bone": (100, 400), "muscle": (20, 90)},
}

SCAN_SPACING = {"chest_contrast": (0.703125, 0.703125, 2.5), "chest_noncontrast": (0.681641, 0.681641, 1.25)}


@pytest.fixture(scope="module")
def real_stats(lidc1_dir, lidc2_dir) -> dict:
    rois = cal.load_rois()
    return {
        "chest_contrast": cal.measure_rois(cal.read_real_scan(lidc1_dir), rois["LIDC-IDRI-0001"]["rois"]),
        "chest_noncontrast": cal.measure_rois(cal.read_real_scan(lidc2_dir), rois["LIDC-IDRI-0002"]["rois"]),
    }


def test_rois_are_documented_and_cover_every_tissue():
    rois = cal.load_rois()
    for scan in cal.PROTOCOL_SCANS.values():
        entry = rois[scan]
        assert {r["tissue"] for r in entry["rois"]} == set(cal.TISSUE_LABELS)
        for roi in entry["rois"]:
            assert len(roi["center_lps_mm"]) == 3 and 1 <= roi["radius_mm"] <= 15 and roi["note"]


def test_rois_sit_in_the_tissue_they_name(real_stats):
    for protocol, scan in cal.PROTOCOL_SCANS.items():
        for tissue, (lo, hi) in PLAUSIBLE_HU[scan].items():
            median = real_stats[protocol][tissue]["median"]
            assert lo <= median <= hi, (scan, tissue, median)


def test_stored_calibration_is_what_the_rois_measure(real_stats):
    stored = load_calibration()
    for protocol, scan in cal.PROTOCOL_SCANS.items():
        assert stored[protocol]["scan"] == scan
        for tissue, measured in real_stats[protocol].items():
            assert stored[protocol]["tissues"][tissue]["median"] == pytest.approx(measured["median"])
            assert stored[protocol]["tissues"][tissue]["iqr"] == pytest.approx(measured["iqr"])
        assert stored[protocol]["noise_sigma_hu"] == pytest.approx(cal.noise_sigma_from_rois(real_stats[protocol]))


@pytest.mark.parametrize("protocol", sorted(cal.PROTOCOL_SCANS))
def test_synthetic_scans_match_the_real_ones(protocol, real_stats):
    """Generated scans of the same kind, at the real scan's voxel size: median within
    MEDIAN_TOLERANCE_HU and IQR within IQR_RATIO of the real ROI statistics, for two seeds."""
    for seed in (0, 1):
        case = generate_case(seed, GeneratorConfig(protocol=protocol, fov="cardiac", spacing_mm=SCAN_SPACING[protocol]))
        synthetic = cal.synthetic_stats(case.image, case.anatomy)
        for tissue, real in real_stats[protocol].items():
            assert tissue in synthetic, (protocol, seed, tissue)
            got = synthetic[tissue]
            assert abs(got["median"] - real["median"]) <= MEDIAN_TOLERANCE_HU[tissue], (protocol, seed, tissue, got, real)
            if (protocol, tissue) in IQR_EXEMPT:
                continue
            ratio = got["iqr"] / real["iqr"]
            assert IQR_RATIO[0] <= ratio <= IQR_RATIO[1], (protocol, seed, tissue, got["iqr"], real["iqr"])


def test_roi_outside_the_image_is_a_clear_error(lidc1_dir):
    image = cal.read_real_scan(lidc1_dir)
    with pytest.raises(InputError, match="outside"):
        cal.roi_mask(image, (0.0, 0.0, 5000.0), 5.0)


def test_roi_mask_is_a_sphere_in_mm():
    from CardiacAI.image import Image

    image = Image(np.zeros((20, 40, 40), np.int16), spacing=(0.5, 0.5, 2.0), origin=(-10.0, -10.0, -20.0))
    mask = cal.roi_mask(image, (0.0, 0.0, 0.0), 4.0)
    ijk = np.argwhere(mask)[:, ::-1] * np.asarray(image.spacing) + np.asarray(image.origin)
    assert np.all(np.linalg.norm(ijk, axis=1) <= 4.0)
    # a 4 mm sphere holds ~4/3 pi 64 / (0.5*0.5*2) = 536 voxel volumes
    assert 400 <= mask.sum() <= 680
