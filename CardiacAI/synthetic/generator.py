"""Synthetic, anatomically labelled chest / cardiac CT: configuration, field of view, rendering.

``generate_case(seed, cfg)`` is deterministic: one ``numpy.random.SeedSequence`` from the seed is
split into independent streams per stage (anatomy, field of view, HU table, noise, SynthSeg
intensities, blur), so a case is bit-identical for a given seed and configuration, and changing
e.g. the protocol leaves the anatomy of a seed unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import ndimage

from . import FOVS, PROTOCOLS  # noqa: F401  (defined with the package, where the CLI reads them without the generator)
from . import __version__  # the generator's version (the cases it makes), not the package's
from ..errors import InputError
from ..image import Image
from . import anatomy as anatomy_mod
from . import physics, shapes
from .anatomy_labels import ANATOMY_LABELS, TASKS, task_structures

MIN_SPACING_MM, MAX_SPACING_MM = 0.3, 3.0
HU_MIN, HU_MAX = -1024, 3071


@dataclasses.dataclass
class GeneratorConfig:
    """Settings of the synthetic CT generator.

    protocol: "cta" (ECG-gated CT angiography, arterial phase), "gated_noncontrast" (calcium
        scoring), "chest_noncontrast" or "chest_contrast" (routine non-gated chest CT).
    spacing_mm: output voxel size (i, j, k) in mm, each 0.3-3 mm. Slices thicker than the
        in-plane spacing are rendered as several sub-slices and averaged (slice profile).
    fov: "chest" (whole chest, lung apex to below the diaphragm), "cardiac" (200-250 mm around
        the heart up to about the aortic arch), "heart_region" (as "cardiac", but reaching 25-90 mm below
        the heart, as the whole-heart pipeline's region of interest on a chest CT does), "narrow" (130-170 mm
        around the heart, up to about the pulmonary bifurcation; misses the arch and often the IMAs) or
        "random" (chest, cardiac or narrow, 40/35/25 %).
    synthseg: random intensity per label, random resolution and bias field (Billot et al.,
        Medical Image Analysis 2023) instead of CT physics; intensities are then not HU.
    noise: add CT noise (switch off for tests of geometry only).
    motion_probability: chance of cardiac motion blur in the heart region.
    min_present_mm3: a task structure with less visible volume counts as absent (and is removed
        from the task label map).
    max_voxels: refuse grids larger than this (memory guard).
    """

    protocol: str = "cta"
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fov: str = "chest"
    synthseg: bool = False
    noise: bool = True
    motion_probability: float = 0.15
    min_present_mm3: float = 10.0
    max_voxels: int = 150_000_000

    def validate(self) -> None:
        """Raise InputError naming the first bad setting."""
        if self.protocol not in PROTOCOLS:
            raise InputError(f"unknown CT protocol {self.protocol!r}", f"use one of {', '.join(PROTOCOLS)}")
        if self.fov not in FOVS:
            raise InputError(f"unknown field of view {self.fov!r}", f"use one of {', '.join(FOVS)}")
        spacing = tuple(float(s) for s in np.ravel(self.spacing_mm))
        if len(spacing) != 3 or not all(MIN_SPACING_MM <= s <= MAX_SPACING_MM for s in spacing):
            raise InputError(f"voxel spacing {self.spacing_mm} mm is outside {MIN_SPACING_MM}-{MAX_SPACING_MM} mm "
                             "or does not have 3 values", "give (i, j, k) spacing in mm, e.g. (1.0, 1.0, 1.0)")
        if not 0.0 <= self.motion_probability <= 1.0:
            raise InputError(f"motion_probability {self.motion_probability} is not within 0-1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spacing_mm"] = [float(s) for s in self.spacing_mm]
        return d


@dataclasses.dataclass(eq=False)
class SyntheticCase:
    """One generated case.

    image: CT volume, int16 HU (SynthSeg mode: int16 arbitrary intensities), LPS, identity
        direction, modality "CT", metadata = generator settings.
    anatomy: uint8 label map of ``ANATOMY_LABELS`` on the same grid (every tissue).
    present: task -> structure key -> bool, False when the structure is (almost) outside the
        field of view (less than ``min_present_mm3`` visible).
    parameters: every random choice (JSON-serialisable), for the model card and reproduction.
    """

    image: Image
    anatomy: Image
    present: dict[str, dict[str, bool]]
    parameters: dict[str, Any]
    _task_maps: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    _fractions: dict[str, tuple[tuple[slice, slice, slice], np.ndarray]] = dataclasses.field(
        default_factory=dict, repr=False)

    def task_labels(self, task: str) -> Image:
        """The label map of a task ("whole-heart" or "ima-aorta"), uint8 with the task label-set
        values (CardiacAI.labels), on the image grid. Raises InputError for an unknown task."""
        if task not in self._task_maps:
            task_structures(task)  # raises InputError for an unknown task
        return self.anatomy.with_array(self._task_maps[task].copy(), metadata={**self.anatomy.metadata, "task": task})

    def task_fractions(self, task: str) -> dict[int, Image]:
        """Partial-volume (soft) labels of a task: task label value -> float32 Image on the image grid,
        the fraction (0-1) of each voxel the structure covers, composited as the image's intensities are
        (shapes painted later take their share), averaged over the slice's sub-slices like the image.

        Kept for the structures in :data:`FRACTION_STRUCTURES` (the IMAs: 2-3 mm arteries, 2-3 voxels
        wide on a model grid, where a voxel's label says little about where the wall lies); a task
        without them gives an empty dict. A structure the case reports absent has all zeros.
        Raises InputError for an unknown task.
        """
        structures = task_structures(task)
        out = {}
        for key, (box, arr) in self._fractions.items():
            if key not in structures:
                continue
            full = np.zeros(self.anatomy.array.shape, np.float32)
            if self.present.get(task, {}).get(key, True):
                full[box] = arr
            out[int(structures[key])] = self.anatomy.with_array(
                full, metadata={**self.anatomy.metadata, "task": task, "fraction_of": key})
        return out


# -- field of view -----------------------------------------------------------------------------------
def _field_of_view(p: dict, fov: str, rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
    """LPS box (lo, hi) in mm of the scanned volume."""
    if fov == "random":
        fov = str(rng.choice(["chest", "cardiac", "narrow"], p=[0.4, 0.35, 0.25]))
    H = np.asarray(p["H"])
    _, e_long, _, _ = anatomy_mod.lv_frame(p)
    bottom = anatomy_mod.heart_lowest_z(p)
    heart_centre = H + 0.35 * p["lv"]["L_cav"] * e_long
    a, b = p["body"]["a"], p["body"]["b"]
    bend = anatomy_mod.sagittal_bend(p)
    forward = (lambda z: float(bend.shift(z))) if bend is not None else (lambda z: 0.0)  # the body's, mm
    if fov == "chest":
        dome_top = bottom - 4 + p["dome"]["right_rise"]
        apex = p["ribs"]["first_z"] + 25
        # routine chest CT: from above the lung apices to 6-14 cm below the diaphragm, table included
        z_lo = dome_top - rng.uniform(60, 140)
        lo = np.array([-a - 10, -b - 10 - forward(z_lo), z_lo])
        hi = np.array([a + 10, b + 25, apex + rng.uniform(10, 30)])
    else:
        if fov in ("cardiac", "heart_region"):  # 200-250 mm reconstruction around the heart
            half = rng.uniform(100, 125)
            centre = heart_centre + np.array([rng.uniform(-10, 10), rng.uniform(-15, 5), 0])
        else:  # 130-170 mm, centred on the heart and shifted back: often misses the IMAs
            half = rng.uniform(65, 85)
            centre = heart_centre + np.array([rng.uniform(0, 15), rng.uniform(5, 25), 0])
        if fov == "cardiac":
            z0, z1 = bottom - rng.uniform(10, 25), p["arch_top_z"] + rng.uniform(-25, 20)
        elif fov == "heart_region":
            # The whole-heart pipeline segments the localiser's box (the heart and its great vessels plus 35 mm),
            # which on a chest CT reaches 25-90 mm below the heart along the descending aorta and the IVC:
            # a network that has seen only 10-25 mm there missed the aorta on those slices.
            z0, z1 = bottom - rng.uniform(25, 90), p["arch_top_z"] + rng.uniform(-25, 20)
        else:
            z0 = bottom - rng.uniform(5, 15)
            # up to about the pulmonary bifurcation, always below the top of the arch
            z1 = min(p["points"]["pa_trunk"][-1][2] + rng.uniform(-5, 25), p["arch_top_z"] - 1.5 * p["aorta_radius"])
        lo = np.array([centre[0] - half, centre[1] - half, z0])
        hi = np.array([centre[0] + half, centre[1] + half, z1])
        lo[:2] = np.maximum(lo[:2], [-a - 10, -b - 10 - forward(z0)])
        hi[:2] = np.minimum(hi[:2], [a + 10, b + 10])
    return fov, lo, hi


# -- generation ----------------------------------------------------------------------------------------
def generate_case(seed: int, cfg: GeneratorConfig | None = None) -> SyntheticCase:
    """Generate one synthetic labelled CT case.

    Parameters
    ----------
    seed: any non-negative integer; the same seed and configuration give bit-identical output.
    cfg: generator settings (defaults: CTA, 1 mm isotropic, whole chest).

    Returns
    -------
    SyntheticCase with ``image`` (int16 HU, array (K, J, I) = (slices, rows, columns), LPS,
    identity direction), ``anatomy`` (uint8 ANATOMY_LABELS), task label maps, ``present`` flags
    and ``parameters``.

    Raises
    ------
    InputError: bad configuration (unknown protocol or field of view, spacing outside 0.3-3 mm,
        grid larger than ``cfg.max_voxels``) or a negative seed.
    """
    cfg = cfg or GeneratorConfig()
    cfg.validate()
    if int(seed) < 0:
        raise InputError(f"seed {seed} is negative", "use a non-negative integer seed")
    streams = np.random.SeedSequence(int(seed)).spawn(7)
    rng_anatomy, rng_fov, rng_hu, rng_noise, rng_synth, rng_blur, rng_texture = (np.random.default_rng(s) for s in streams)

    p = anatomy_mod.sample_anatomy(rng_anatomy)
    fov, lo, hi = _field_of_view(p, cfg.fov, rng_fov)
    sx, sy, sz = (float(s) for s in cfg.spacing_mm)
    nx, ny, nz = (max(2, int(np.floor((hi[n] - lo[n]) / s)) + 1) for n, s in enumerate((sx, sy, sz)))
    if nx * ny * nz > cfg.max_voxels:
        raise InputError(f"the {fov} field of view at {sx:g}x{sy:g}x{sz:g} mm needs {nx}x{ny}x{nz} voxels, "
                         f"more than max_voxels={cfg.max_voxels}",
                         "use a coarser spacing or a smaller field of view ('cardiac' or 'narrow')")
    x = lo[0] + sx * np.arange(nx)
    y = lo[1] + sy * np.arange(ny)
    z = lo[2] + sz * np.arange(nz)
    # Thick slices: render odd-numbered sub-slices and average them (slice profile).
    ratio = sz / max(min(sx, sy), 0.5)
    sub = min(5, 2 * int(np.floor((ratio - 1) / 2 + 0.5)) + 1) if ratio > 1.0 else 1
    z_render = (z[:, None] + (np.arange(sub) - (sub - 1) / 2) * (sz / sub)).ravel()
    antialias = max(sx, sy, sz / sub)

    # Intensities: per tissue (CT physics) or per label (SynthSeg).
    hu_table, noise_sigma = physics.sample_hu_table(cfg.protocol, rng_hu)
    if cfg.synthseg:
        label_means = rng_synth.uniform(-1000.0, 1500.0, size=256).astype(np.float32)
        intensity = lambda tissue, label: float(label_means[label])
        background = float(label_means[0])
    else:
        intensity = lambda tissue, label: hu_table[tissue]
        background = hu_table["air"]
    deformation = shapes.Deformation(np.random.default_rng(p["deformation"]["seed"]), p["deformation"]["amplitude_mm"])
    bend = anatomy_mod.sagittal_bend(p)
    canvas = shapes.Canvas(x, y, z_render, antialias, background, intensity, deformation, bend,
                           track_fractions=[ANATOMY_LABELS[key] for key in FRACTION_STRUCTURES])
    info = anatomy_mod.paint_anatomy(canvas, p)
    if bend is not None:  # the heart's box in the scanner's frame, for the motion blur
        info["heart_box"] = bend.scanner_box(*info["heart_box"])

    # Back to the output grid: average sub-slices for the image, central sub-slice for labels.
    shape = (nz, ny, nx)
    if sub > 1:
        image = canvas.image.reshape(nz, sub, ny, nx).mean(axis=1)
        labels = np.ascontiguousarray(canvas.labels[sub // 2::sub])
        peri = np.ascontiguousarray(canvas.peri[sub // 2::sub])
    else:
        image, labels, peri = canvas.image, canvas.labels, canvas.peri
    fractions = {}
    for key in FRACTION_STRUCTURES:
        painted = canvas.fractions(ANATOMY_LABELS[key])
        if painted is not None:
            fractions[key] = _average_sub_slices(*painted, sub)
    del canvas

    physics_params: dict[str, Any] = {"noise_sigma_hu": noise_sigma if cfg.noise else 0.0, "subslices": sub}
    if cfg.synthseg:
        image = _synthseg_appearance(image, labels, (sx, sy, sz), x, y, z, rng_synth, physics_params)
    else:
        physics.add_tissue_texture(image, labels, (sx, sy, sz), rng_texture)
        if cfg.protocol in ("cta", "chest_contrast"):  # dense contrast in the injected vein
            excess = hu_table["blood_svc"] - 300.0
            physics.add_svc_streaks(image, x, y, z, info["svc_curve"], excess, rng_blur)
            physics_params["svc_streak_excess_hu"] = excess
        fwhm_in, fwhm_through = float(rng_blur.uniform(0.6, 1.2)), float(rng_blur.uniform(0.4, 1.0))
        physics_params.update(psf_fwhm_inplane_mm=fwhm_in, psf_fwhm_through_mm=fwhm_through)
        motion = bool(rng_blur.uniform() < cfg.motion_probability)
        physics_params["motion_blur"] = motion
        if motion:
            _motion_blur(image, labels, x, y, z, info["heart_box"], float(rng_blur.uniform(1.0, 2.5)), (sx, sy, sz))
        image = physics.blur(image, (sx, sy, sz), fwhm_in, fwhm_through)
        if cfg.noise:
            image += physics.correlated_noise(shape, noise_sigma, (sx, sy, sz), rng_noise)
    np.rint(image, out=image)
    np.clip(image, HU_MIN, HU_MAX, out=image)
    image_i16 = image.astype(np.int16)

    parameters = {
        "generator": "CardiacAI.synthetic", "version": __version__, "seed": int(seed), "config": cfg.to_dict(),
        "fov": fov, "fov_box_lps_mm": [lo.tolist(), hi.tolist()], "anatomy": p,
        "hu_table": hu_table if not cfg.synthseg else None, "physics": physics_params,
    }
    metadata = {"generator": "CardiacAI.synthetic", "version": __version__, "seed": int(seed), "protocol": cfg.protocol,
                "fov": fov, "synthseg": cfg.synthseg, "units": "arbitrary (SynthSeg)" if cfg.synthseg else "HU",
                "spacing_mm": [sx, sy, sz]}
    geometry = dict(spacing=(sx, sy, sz), origin=(float(x[0]), float(y[0]), float(z[0])), direction=np.eye(3))
    img = Image(array=image_i16, modality="CT", metadata=metadata, **geometry)
    anat = Image(array=labels, modality="", metadata={**metadata, "labels": "ANATOMY_LABELS"}, **geometry)
    for side, bit in (("left", 2), ("right", 4)):
        _flag_shell_from_label(labels, peri, ANATOMY_LABELS[f"{side}_internal_mammary_artery"], bit,
                               2.0 * p["ima"][side]["radius"], (sx, sy, sz))
    task_maps = {task: _task_map(task, labels, peri) for task in TASKS}
    present: dict[str, dict[str, bool]] = {}
    voxel_mm3 = sx * sy * sz
    for task, arr in task_maps.items():
        counts = np.bincount(arr.ravel(), minlength=256)
        present[task] = {}
        for key, value in task_structures(task).items():
            visible = counts[value] * voxel_mm3 >= cfg.min_present_mm3
            present[task][key] = bool(visible)
            if not visible and counts[value]:
                arr[arr == value] = 0
    return SyntheticCase(image=img, anatomy=anat, present=present, parameters=_jsonable(parameters), _task_maps=task_maps,
                         _fractions=fractions)


#: Anatomy structures whose partial-volume fractions a case keeps (:meth:`SyntheticCase.task_fractions`).
FRACTION_STRUCTURES = ("left_internal_mammary_artery", "right_internal_mammary_artery")


def _average_sub_slices(box: tuple[slice, slice, slice], arr: np.ndarray, sub: int):
    """Fractions painted on the sub-slice grid (box on it, array) -> (box on the output grid, array):
    each output slice the mean of its ``sub`` sub-slices, as the image's slice profile is."""
    if sub == 1:
        return box, arr
    k0, k1 = box[0].start, box[0].stop
    first, last = k0 // sub, -(-k1 // sub)
    padded = np.zeros(((last - first) * sub,) + arr.shape[1:], np.float32)
    padded[k0 - first * sub:k1 - first * sub] = arr
    averaged = padded.reshape(last - first, sub, *arr.shape[1:]).mean(axis=1)
    return (slice(first, last), box[1], box[2]), averaged


def _task_map(task: str, labels: np.ndarray, peri: np.ndarray) -> np.ndarray:
    structures = task_structures(task)
    lut = np.zeros(256, dtype=np.uint8)
    if task == "whole-heart":
        for key, value in structures.items():
            lut[ANATOMY_LABELS[key]] = value
        return lut[labels]
    # ima-aorta: perivascular regions = tissue within one vessel diameter of the wall (flagged
    # while painting), inside the body, never the vessels themselves.
    out = np.zeros(labels.shape, dtype=np.uint8)
    in_body = labels != ANATOMY_LABELS["background"]
    out[((peri & 1) != 0) & in_body] = structures["periaortic_region"]
    out[((peri & 6) != 0) & in_body] = structures["peri_ima_region"]
    for key in ("aorta", "left_internal_mammary_artery", "right_internal_mammary_artery"):
        out[labels == ANATOMY_LABELS[key]] = structures[key]
    return out


def _flag_shell_from_label(labels, peri, value, bit, margin_mm, spacing):
    """Set ``bit`` in ``peri`` within ``margin_mm`` of the wall of the voxels labelled ``value``
    (distance from voxel centres; the wall lies half a voxel beyond the outermost centres)."""
    where = np.nonzero(labels == value)
    if not where[0].size:
        return
    step = np.asarray(spacing[::-1])
    pad = np.ceil((margin_mm + step.max()) / step).astype(int) + 1
    lo = [max(int(w.min()) - p, 0) for w, p in zip(where, pad)]
    hi = [min(int(w.max()) + p + 1, n) for w, p, n in zip(where, pad, labels.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    distance = ndimage.distance_transform_edt(labels[box] != value, sampling=step)
    shell = (distance > 0) & (distance <= margin_mm + 0.5 * float(np.min(step)))
    peri[box][shell] |= np.uint8(bit)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def _window(coords, lo, hi, ramp=10.0):
    """1D weight: 1 inside [lo, hi], raised-cosine ramp of ``ramp`` mm to 0 outside."""
    w = np.clip(np.minimum(coords - (lo - ramp), (hi + ramp) - coords) / ramp, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * w)).astype(np.float32)


#: Anatomy labels that move with the heart beat (pericardium and everything in it, coronaries).
_BEATING = np.zeros(256, np.float32)
_BEATING[[ANATOMY_LABELS[name] for name in anatomy_mod.BEATING_STRUCTURES]] = 1.0
#: Chest-wall vessels that the heart's motion never moves, even where it beats right behind them.
_STILL = np.zeros(256, np.float32)
_STILL[[ANATOMY_LABELS[name] for name in ("left_internal_mammary_artery", "right_internal_mammary_artery",
                                           "internal_mammary_veins")]] = 1.0


def _motion_blur(image, labels, x, y, z, box, sigma_mm, spacing):
    """Cardiac motion: blur the heart region, blended in with a smooth window (in place).

    Only what beats with the heart is blurred (a smoothed mask of :data:`_BEATING` labels): the
    chest wall in front of it, where the 2-3 mm internal mammary arteries run, stays sharp, as on a
    real scan (a 2.5 mm blur there erased the arteries: CTA median -130 HU inside them). The
    internal mammary vessels stay sharp even where the heart touches them (:data:`_STILL`): the
    smoothed mask reached them there and left the lowest 2 cm of the left IMA at 0-60 HU on CTA.
    """
    lo, hi = np.asarray(box[0]), np.asarray(box[1])
    i0, i1 = np.searchsorted(x, [lo[0] - 10, hi[0] + 10])
    j0, j1 = np.searchsorted(y, [lo[1] - 10, hi[1] + 10])
    k0, k1 = np.searchsorted(z, [lo[2] - 10, hi[2] + 10])
    if i0 >= i1 or j0 >= j1 or k0 >= k1:
        return
    region = image[k0:k1, j0:j1, i0:i1]
    blurred = ndimage.gaussian_filter(region, sigma=[sigma_mm / s for s in spacing[::-1]], mode="nearest")
    w = (_window(z[k0:k1], lo[2], hi[2])[:, None, None] * _window(y[j0:j1], lo[1], hi[1])[None, :, None]
         * _window(x[i0:i1], lo[0], hi[0])[None, None, :])
    local = labels[k0:k1, j0:j1, i0:i1]
    w = w * ndimage.gaussian_filter(_BEATING[local], sigma=[2.0 / s for s in spacing[::-1]], mode="nearest")
    w *= 1.0 - _STILL[local]
    region += w * (blurred - region)


def _synthseg_appearance(image, labels, spacing, x, y, z, rng, record):
    """SynthSeg-style appearance (Billot et al. 2023): per-label Gaussian texture, random
    resolution (anisotropic blur), smooth multiplicative bias field, then noise."""
    label_sigma = rng.uniform(0.0, 40.0, size=256).astype(np.float32)
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * label_sigma[labels]
    fwhm = rng.uniform(0.5, 4.0, size=3)  # random resolution along i, j, k (mm)
    image = physics.blur(image, spacing, float(fwhm[:2].mean()), float(fwhm[2]))
    k = rng.normal(scale=2 * np.pi / 300.0, size=(3, 3))
    phase = rng.uniform(0, 2 * np.pi, 3)
    amp = rng.uniform(0.0, 0.25)
    X, Y, Z = x[None, None, :].astype(np.float32), y[None, :, None].astype(np.float32), z[:, None, None].astype(np.float32)
    bias = sum(np.sin(k[n, 0] * X + k[n, 1] * Y + k[n, 2] * Z + phase[n]) for n in range(3)) * np.float32(amp / 1.5)
    image += 1024.0
    image *= np.exp(bias).astype(np.float32)
    image -= 1024.0
    sigma = float(rng.uniform(0, 30))
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(sigma)
    record.update(synthseg_blur_fwhm_mm=fwhm.tolist(), bias_amplitude=amp, synthseg_noise=sigma)
    return image
