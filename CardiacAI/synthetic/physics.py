"""CT image formation of the synthetic generator: HU per tissue and protocol, blur, noise, streaks.

HU ranges (uniform per case) follow the literature for the cardiac protocols and the measurements
on the real LIDC-IDRI scans for the routine chest protocols (``hu_calibration.json``, written by
``benchmarks/calibrate_hu.py``; see docs/synthetic.md):

* "cta": ECG-gated coronary CT angiography in the arterial phase (bolus tracking in the ascending
  aorta, 100-120 kV). Left heart and aorta 250-550 HU (SCCT guidelines aim at >= 250 HU in the
  coronaries; typical 300-450 HU); right heart lower and inhomogeneous because opacified SVC blood
  mixes with unopacified IVC blood, with streaks from dense contrast in the SVC; myocardium
  enhanced to about 90-140 HU; fat -120 to -80 HU; lung -880 to -820 HU.
* "gated_noncontrast": ECG-gated calcium-scoring CT (120 kV, 2.5-3 mm slices usually): blood
  35-50 HU (hematocrit dependent), myocardium within a few HU of blood, calcium >= 130 HU
  (Agatston threshold).
* "chest_noncontrast", "chest_contrast": routine non-gated chest CT; HU centred on the medians
  measured on LIDC-IDRI-0002 (non-contrast) and LIDC-IDRI-0001 (contrast). With contrast the injected
  veins (SVC, left brachiocephalic vein) range from the left heart's HU (venous phase) to undiluted
  contrast with streaks, and the IVC from unopacified to enhanced; LIDC-IDRI-0001 (an arterial-phase
  scan) has a 2060 HU SVC with streaks and swirls of dense contrast in its right atrium, which mixes the
  two (``anatomy.right_atrial_blood``).
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
from scipy import ndimage

# Tissue -> (low, high) HU, sampled uniformly once per case. Blood tissues are named by where the
# blood is, because contrast reaches them at different times.
_COMMON = {
    "air": (-1000.0, -990.0),
    "airway_air": (-1000.0, -960.0),
    "skin": (20.0, 50.0),
    "fat": (-115.0, -85.0),
    "muscle": (40.0, 60.0),
    "lung": (-880.0, -820.0),
    "bone_cortex": (700.0, 1100.0),
    "bone_marrow": (150.0, 280.0),
    "cartilage": (90.0, 160.0),
    "disc": (70.0, 100.0),
    "csf": (10.0, 30.0),
    "esophagus": (35.0, 55.0),
    "pericardium": (25.0, 50.0),
    "stomach_content": (0.0, 40.0),  # fluid and food
    "table": (150.0, 450.0),         # carbon-fibre scanner table
}

#: Blood without contrast, HU (hematocrit dependent).
UNOPACIFIED_BLOOD_HU = (35.0, 50.0)
#: The brightest injected-vein blood a routine contrast chest CT draws, HU. LIDC-IDRI-0001's SVC reads 2060 HU
#: (mean over the part the whole-heart model labels), with beam-hardening streaks around it; generators up to
#: 0.2.10 drew the SVC of ``chest_contrast`` within 80 HU of the left heart, and no streaks.
INJECTED_VEIN_MAX_HU = 2200.0

_LITERATURE = {
    "cta": {
        **_COMMON,
        "blood_left": (250.0, 550.0),
        "blood_ra": (150.0, 350.0),
        "blood_rv": (150.0, 400.0),
        "blood_pa": (150.0, 400.0),
        "blood_svc": (350.0, 1200.0),
        "blood_ivc": (60.0, 140.0),
        "blood_cs": (150.0, 300.0),
        "blood_vein": (60.0, 150.0),
        "blood_bcv_injected": (350.0, 1200.0),
        "myocardium": (90.0, 140.0),
        "liver": (60.0, 90.0),
    },
    "gated_noncontrast": {
        **_COMMON,
        **{t: UNOPACIFIED_BLOOD_HU for t in ("blood_left", "blood_ra", "blood_rv", "blood_pa", "blood_svc",
                                      "blood_ivc", "blood_cs", "blood_vein", "blood_bcv_injected")},
        "myocardium": (35.0, 50.0),
        "liver": (50.0, 65.0),
    },
}

# Noise standard deviation (HU) in homogeneous tissue, low dose to standard dose.
_NOISE_SIGMA = {"cta": (15.0, 35.0), "gated_noncontrast": (15.0, 35.0)}

#: Tissue classes the calibration measures on real scans, and the tissue names they stand for.
CALIBRATED_TISSUES = {
    "blood": ("blood_left", "blood_ra", "blood_rv", "blood_pa", "blood_svc", "blood_ivc",
              "blood_cs", "blood_vein", "blood_bcv_injected"),
    "myocardium": ("myocardium",),
    "fat": ("fat",),
    "lung": ("lung",),
    "bone": ("bone_marrow",),
    "muscle": ("muscle",),
}


def load_calibration() -> dict:
    """The HU statistics measured on the real scans (``hu_calibration.json``), or {} if absent."""
    try:
        text = resources.files(__package__).joinpath("hu_calibration.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)


def tissue_ranges(protocol: str) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """(tissue -> (low, high) HU, noise sigma range HU) for a protocol.

    The routine chest protocols centre each calibrated tissue on the median measured on the
    matching real scan (± a spread that covers patient-to-patient variation) and take the noise
    from the measured spread; without a calibration file they fall back to literature values.
    """
    if protocol in _LITERATURE:
        return dict(_LITERATURE[protocol]), _NOISE_SIGMA[protocol]
    contrast = protocol == "chest_contrast"
    base = dict(_LITERATURE["cta" if contrast else "gated_noncontrast"])
    if contrast:  # from the arterial phase (dense injected veins, unopacified IVC) to the venous phase
        for t in CALIBRATED_TISSUES["blood"]:
            base[t] = (140.0, 200.0)
        base["blood_svc"] = base["blood_bcv_injected"] = (150.0, INJECTED_VEIN_MAX_HU)
        base["blood_ivc"] = (UNOPACIFIED_BLOOD_HU[0], 200.0)
        base["liver"] = (90.0, 120.0)
    noise = (15.0, 30.0)
    calibration = load_calibration().get(protocol)
    if calibration:
        spread = {"blood": 20.0 if contrast else 10.0, "myocardium": 10.0, "fat": 10.0, "lung": 25.0, "bone": 40.0,
                  "muscle": 8.0}
        for cls, tissues in CALIBRATED_TISSUES.items():
            stats = calibration["tissues"].get(cls)
            if not stats:
                continue
            for t in tissues:
                centre = stats["median"]
                if cls == "blood" and contrast and t in ("blood_svc", "blood_bcv_injected"):
                    # from evenly enhanced (venous phase) to undiluted contrast in the injected veins
                    base[t] = (centre, INJECTED_VEIN_MAX_HU)
                elif cls == "blood" and contrast and t == "blood_ivc":
                    # from unopacified (arterial phase: the contrast has not come back from the legs) to enhanced
                    base[t] = (UNOPACIFIED_BLOOD_HU[0], centre + spread[cls])
                else:
                    base[t] = (centre - spread[cls], centre + spread[cls])
        sigma = calibration.get("noise_sigma_hu")
        if sigma:
            noise = (0.85 * sigma, 1.15 * sigma)
    return base, noise


def sample_hu_table(protocol: str, rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """One case's HU per tissue and noise sigma (HU), sampled from the protocol's ranges."""
    ranges, noise = tissue_ranges(protocol)
    table = {t: float(rng.uniform(lo, hi)) for t, (lo, hi) in sorted(ranges.items())}
    # Without contrast myocardium follows blood, a few HU denser (blood HU falls with anaemia).
    if protocol in ("gated_noncontrast", "chest_noncontrast"):
        table["myocardium"] = table["blood_left"] + float(rng.uniform(-2.0, 10.0))
        for t in CALIBRATED_TISSUES["blood"]:
            table[t] = table["blood_left"] + float(rng.uniform(-3.0, 3.0))
    return table, float(rng.uniform(*noise))


def correlated_noise(shape, sigma_hu: float, spacing_mm, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with CT-like texture: white noise band-passed in the axial plane (difference
    of Gaussians, mimicking the ramp-times-apodisation noise power spectrum of filtered
    back-projection), scaled to standard deviation ``sigma_hu``. Shape (K, J, I), float32."""
    white = rng.standard_normal(size=shape, dtype=np.float32)
    # Grain of about 0.7 mm (kernel dependent): sigma in pixels of the in-plane spacing.
    s_fine = max(0.35 / spacing_mm[0], 0.3)
    s_coarse = 2.5 * s_fine
    fine = ndimage.gaussian_filter(white, sigma=(0.0, s_fine, s_fine), mode="wrap")
    coarse = ndimage.gaussian_filter(fine, sigma=(0.0, s_coarse, s_coarse), mode="wrap")
    fine -= 0.6 * coarse
    std = float(fine[:: max(1, shape[0] // 8)].std()) or 1.0
    fine *= np.float32(sigma_hu / std)
    return fine


#: Anatomical texture (HU standard deviation at ~1 mm grain) per anatomy label key: lung
#: parenchyma and trabecular bone are far from homogeneous on real scans (ROI IQR ~60-120 HU).
TEXTURE_HU = {"lung": 40.0, "vertebra": 70.0, "rib": 40.0, "sternum": 50.0, "liver": 6.0, "muscle": 6.0,
              "left_ventricle_myocardium": 8.0, "right_ventricle_myocardium": 8.0,
              "subcutaneous_fat": 5.0, "mediastinal_fat": 5.0, "epicardial_fat": 5.0, "pericardial_fat": 5.0}


def add_tissue_texture(image: np.ndarray, labels: np.ndarray, spacing_mm, rng: np.random.Generator,
                       amplitudes: dict[str, float] | None = None) -> None:
    """Add smooth Gaussian texture (grain ~1 mm) scaled per anatomy label (in place).

    image, labels: (K, J, I) float32 HU and uint8 anatomy labels; amplitudes: label key -> HU SD.
    """
    from .anatomy_labels import ANATOMY_LABELS

    table = np.zeros(256, dtype=np.float32)
    for key, sd in (amplitudes or TEXTURE_HU).items():
        table[ANATOMY_LABELS[key]] = sd
    field = rng.standard_normal(size=image.shape, dtype=np.float32)
    # in-plane grain only (cheaper); the through-plane PSF applied afterwards smooths along z
    sigma = (0.0, max(0.5 / spacing_mm[1], 0.3), max(0.5 / spacing_mm[0], 0.3))
    field = ndimage.gaussian_filter(field, sigma=sigma, mode="wrap")
    field *= np.float32(1.0 / (float(field[:: max(1, field.shape[0] // 8)].std()) or 1.0))
    field *= table[labels]
    image += field


def add_svc_streaks(image: np.ndarray, x, y, z, centreline: np.ndarray, hu_excess: float,
                    rng: np.random.Generator) -> None:
    """Add beam-hardening streaks radiating from dense contrast in the SVC (in place).

    Each axial slice through the SVC gets alternating dark and bright narrow rays from the vessel
    centre, their amplitude proportional to how much the SVC exceeds ~300 HU and decaying with
    distance (to ~40 mm). image (K, J, I); x, y, z voxel-centre coordinates (mm).
    """
    if hu_excess <= 0:
        return
    n_rays = int(rng.integers(4, 9))
    angles = rng.uniform(0, np.pi, n_rays)
    signs = rng.choice([-1.0, 1.0], n_rays)
    amplitude = 0.25 * hu_excess
    for point in centreline:
        k = int(np.argmin(np.abs(z - point[2])))
        if abs(z[k] - point[2]) > (z[1] - z[0] if len(z) > 1 else 1.0):
            continue
        i0, i1 = np.searchsorted(x, [point[0] - 60, point[0] + 60])
        j0, j1 = np.searchsorted(y, [point[1] - 60, point[1] + 60])
        if i0 >= i1 or j0 >= j1:
            continue
        dx = x[i0:i1][None, :] - point[0]
        dy = y[j0:j1][:, None] - point[1]
        r = np.hypot(dx, dy)
        theta = np.arctan2(dy, dx)
        streak = np.zeros_like(r, dtype=np.float32)
        for a, s in zip(angles, signs):
            # distance of the pixel from the ray line through the centre at angle a
            off = np.abs(np.sin(theta - a)) * r
            streak += s * np.exp(-0.5 * (off / 1.2) ** 2)
        streak *= amplitude * np.exp(-r / 40.0) * (r > 8)
        image[k, j0:j1, i0:i1] += streak.astype(np.float32)


def blur(image: np.ndarray, spacing_mm, fwhm_inplane_mm: float, fwhm_through_mm: float) -> np.ndarray:
    """Gaussian PSF: FWHM in mm in-plane and through-plane (slice profile), in place where
    possible. image (K, J, I)."""
    to_sigma = 1.0 / 2.3548
    sigma = (fwhm_through_mm * to_sigma / spacing_mm[2], fwhm_inplane_mm * to_sigma / spacing_mm[1],
             fwhm_inplane_mm * to_sigma / spacing_mm[0])
    return ndimage.gaussian_filter(image, sigma=sigma, mode="nearest", truncate=3.0)
