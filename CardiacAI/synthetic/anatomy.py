"""The synthetic chest and heart: random anatomy parameters and their painting as label maps.

Coordinate frame: LPS millimetres, x to the patient's left, y posterior, z superior, with x = 0 on
the midline, y = 0 at the middle of the chest's antero-posterior extent and z = 0 at the level of
the mitral valve centre ``H``. Cardiac structures are laid out around ``H`` in a canonical
arrangement (offsets in mm for an average adult heart), then scaled, rotated and elastically
deformed per case; the left ventricle is built in its own long-axis frame (base at the mitral
plane, apex along ``e_long``).

``sample_anatomy(rng)`` draws every random choice into a JSON-serialisable dict;
``paint_anatomy(canvas, anatomy)`` paints it, deterministically, in an order that defines
precedence (later shapes cover earlier ones).

Sizes follow typical adult values: LV cavity 60-250 mL (end-diastole), LV myocardium 80-250 g
(1.05 g/mL, including the papillary muscles as the whole-heart paper does), LA 40-150 mL, aortic
diameter 25-40 mm, coronary arteries 1.5-4.5 mm, internal mammary arteries 2-3 mm, 6-18 mm lateral
to the sternal border at the sternum's depth, calcified plaques 1-500 mm³ with peak 130-1500 HU.
"""

from __future__ import annotations

import itertools
from statistics import NormalDist

import numpy as np

from ..metrics import MYOCARDIUM_DENSITY_G_PER_ML
from . import shapes
from .anatomy_labels import ANATOMY_LABELS as L



#: Extrapleural fat around the internal mammary vessels (mm beyond each vessel's radius), drawn per
#: side. On LIDC-IDRI-0001 the lung comes within 1-2 mm of the artery's edge; 0.2.1-0.2.2 drew 3 mm
#: everywhere, and a model trained on them saw no IMA on the real scan.
IMA_FAT_SLEEVE_MM = (0.5, 2.0)
#: How often an internal mammary vein shows beside its artery (in a contrast scan's arterial phase
#: the veins are often unenhanced or collapsed; 0.2.1-0.2.2 always drew one, an easy cue that real
#: scans lack).
IMA_VEIN_PROBABILITY = 0.5
#: How far (mm) the extrapleural fat the IMA runs in reaches beyond it at full depth, away from the
#: sternum (toward it, the fat reaches the sternal border), before it thins out. On LIDC-IDRI-0001 the tissue 6 mm around the IMA reads a
#: median -50 to -66 HU, fat of the chest wall with the lung only behind; generators 0.2.1-0.2.4 drew a
#: 0.5-2 mm sleeve around a vessel lying in the lung (-720 to -830 HU there), and the model trained
#: on them found no real IMA, not even one painted sharp and bright on the real scan.
IMA_FAT_PLATE_MM = (5.0, 15.0)
#: Beyond the sternal border, the distance (mm) over which the pectoral muscle grows from a thin
#: parasternal sheet to the full chest-wall muscle layer. On LIDC-IDRI-0001 and 0002 the wall 10-30 mm
#: from the midline is 12-25 mm of fat over 2-5 mm of muscle, then fat to the lung, and over the
#: sternum fat lies straight on the bone; 0.2.0-0.2.3 drew 12-17 mm of muscle everywhere, over the
#: sternum too, and the IMA model trained on them found no IMA on either real scan.
PECTORAL_REACH_MM = (25.0, 50.0)
#: Thickness (mm) of the muscle sheet (pectoral origin and internal intercostals) beside the sternum.
PARASTERNAL_SHEET_MM = (1.5, 4.0)
#: Thickness (mm) of the intercostal muscle layer beside the sternum, forward from the back of the costal
#: cartilages: the internal intercostal muscles that fill the spaces between the cartilages, in front of
#: the IMAs. On LIDC-IDRI-0001 the tissue 2-8 mm in front of the real IMAs reads muscle or cartilage
#: (-30 to 150 HU) on 75-90 % of their slices and fat on 10-24 %; generators up to 0.2.9 filled those spaces
#: with fat, and 2-8 mm in front of their IMAs read fat on 59-81 % of the slices of the test seeds (-100 to -130 HU;
#: ``benchmarks/ima_surroundings.py``).
INTERCOSTAL_MUSCLE_MM = (4.0, 8.0)
#: How far (mm) left of the midline the centre of the aorta lies below the diaphragm, its wall 0-2 mm in front
#: of the vertebral body. On LIDC-IDRI-0001 (benchmarks/real_aorta_check.py tracks it) the centre lies 10-16 mm
#: left of the midline there, directly in front of the vertebral body (17-19 mm left in the chest, against it);
#: generators up to 0.2.5 put it 18-30 mm left and 6 mm clear of the spine, beside rather than in front of it,
#: and the model trained on them found none of the real aorta below the diaphragm.
ABDOMINAL_AORTA_X_MM = (8.0, 15.0)
#: The aorta's radius at each of its control points as a fraction of the ascending aorta's: root (sinus),
#: ascending, arch, descending, and below the diaphragm (the last two drawn per patient from 0.2.7:
#: :data:`ABDOMINAL_AORTA_FRACTION`; 0.2.6 used these, 15-21 mm wide; up to
#: 0.2.5, 0.78 and 0.75: 19-25 mm).
AORTA_RADIUS_FRACTIONS = (1.15, 1.05, 1.0, 1.0, 0.92, 0.88, 0.82, 0.8, 0.7, 0.62)
#: Gap (mm) between the abdominal aorta's wall and the vertebral body (before the tortuosity every vessel gets).
AORTA_SPINE_GAP_MM = (0.0, 2.0)
#: The diaphragmatic crura: a sleeve of muscle this thick (mm) around the aorta where it passes the
#: diaphragm, from just below the heart down this far (mm); on LIDC-IDRI-0001 the abdominal aorta lies in
#: soft tissue, not in fat as the generator drew it.
CRUS_THICKNESS_MM = (3.0, 7.0)
CRUS_LENGTH_MM = (50.0, 90.0)
#: The abdominal aorta's radius at control points 8 and 9 (140 and 260 mm below the heart's centre) as
#: fractions of the ascending aorta's, drawn per patient (generator 0.2.7): point 8 from this range, point 9 a
#: further :data:`ABDOMINAL_AORTA_TAPER` of it. LIDC-IDRI-0001's lumen narrows from 20-22 mm at the hiatus to
#: 15-16 mm 150 mm lower; 0.2.6 drew 17-24 mm there for every patient, and the model trained on it finds a
#: 14-16 mm tube in the real body on few slices (docs/segmentation.md).
ABDOMINAL_AORTA_FRACTION = (0.56, 0.74)
ABDOMINAL_AORTA_TAPER = (0.8, 0.95)
#: The body's forward bend below the chest (:class:`~CardiacAI.synthetic.shapes.SagittalBend`): where it starts,
#: relative to the heart's lowest point (mm, positive above it), over how many mm it reaches its slope, and
#: the slope (mm forward per mm down). The front of LIDC-IDRI-0001's vertebral bodies comes 49 mm forward over
#: the scan's lowest 120 mm (0.41 mm per mm; 0.2 over the 80 mm above), LIDC-IDRI-0002's 29 mm over 100 mm
#: (0.29); their backs 0.21-0.24. Generators up to 0.2.6 drew a straight body, so their abdominal aorta ran
#: straight down where LIDC-IDRI-0001's runs 22 degrees forward, and a model trained on them rejected a tube
#: along the real aorta's course; 0.2.7 drew slopes of 0.10-0.32, and the model trained on it still rejected
#: the real course (0.40) while finding tubes at half of it (docs/segmentation.md).
BEND_START_ABOVE_HEART_BOTTOM_MM = (-10.0, 40.0)
BEND_ONSET_MM = (30.0, 80.0)
BEND_SLOPE = (0.15, 0.45)


def _smoothstep(t):
    """0 below 0, 1 above 1, 3t² - 2t³ between (float32 arrays)."""
    t = np.clip(t, 0, 1)
    return t * t * (np.float32(3) - np.float32(2) * t)


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _lv_volumes(L_cav, r_cav, t):
    """Analytic volumes (mL) of the truncated-ellipsoid LV cavity and myocardium."""
    cut = 0.08  # the cavity reaches 8% of its length above the base plane
    def trunc(a, r, c):  # volume of the ellipsoid part with axial coordinate >= -c*a
        return np.pi * a * r * r * (2.0 / 3.0 + c - c ** 3 / 3.0)
    cav = trunc(L_cav, r_cav, cut) / 1000.0
    outer = trunc(L_cav + 0.8 * t, r_cav + t, cut * L_cav / (L_cav + 0.8 * t)) / 1000.0
    return cav, outer - cav


# -- sampling --------------------------------------------------------------------------------------
def sample_anatomy(rng: np.random.Generator) -> dict:
    """Draw one synthetic patient: body habitus, heart size/axis/proportions, vessel paths,
    plaques. Returns a JSON-serialisable dict (lists and floats) that fully determines the
    painted anatomy."""
    p: dict = {}
    # Body habitus: half-width and half-depth of the chest (mm); fat grows with size.
    a_body = _u(rng, 130, 168)
    b_body = _u(rng, 100, 128)
    size = (a_body - 130) / 38
    fat = float(np.clip(3 + 16 * size + rng.uniform(-3, 7), 3, 30))
    p["body"] = dict(a=a_body, b=b_body, skin=2.0, fat=fat, muscle=_u(rng, 4, 9),
                     posterior_muscle=_u(rng, 12, 22), taper=_u(rng, 0.05, 0.15),
                     squareness=_u(rng, 2.3, 3.0))  # superellipse exponent of the cross-section
    H = np.array([_u(rng, 5, 20), _u(rng, 0, 14), 0.0])
    p["H"] = H.tolist()
    s = _u(rng, 0.84, 1.0)  # global heart scale
    p["heart_scale"] = s

    # Left ventricle: long axis from the base (mitral plane) to the apex.
    theta = np.deg2rad(_u(rng, 35, 60))  # azimuth from anterior toward the left
    phi = np.deg2rad(_u(rng, -40, -20))  # elevation (apex points down)
    e_long = np.array([np.sin(theta) * np.cos(phi), -np.cos(theta) * np.cos(phi), np.sin(phi)])
    e_rv = _unit(np.cross(e_long, [0, 0, 1]))  # toward the right ventricle (right-anterior)
    e_sup = -np.cross(e_long, e_rv)  # superior-anterior side of the short-axis plane
    condition = rng.choice(["normal", "normal", "normal", "dilated", "hypertrophy"])
    for _ in range(50):
        lv_f = _u(rng, 0.8, 1.2) * (1.45 if condition == "dilated" else 1.0)
        L_cav = 86 * s * lv_f ** (1 / 3) * _u(rng, 0.93, 1.07)
        r_cav = 26.5 * s * lv_f ** (1 / 3)
        t = _u(rng, 8, 11) if condition != "hypertrophy" else _u(rng, 13, 17)
        if condition == "hypertrophy":  # aortic stenosis: thick wall, small-normal cavity
            L_cav *= 0.92
            r_cav *= 0.9
        cav, myo = _lv_volumes(L_cav, r_cav, t)
        # analytic bounds; the painted volumes come out ~20 % lower (papillary muscles, base)
        if 90 <= cav <= 280 and 105 <= myo * MYOCARDIUM_DENSITY_G_PER_ML <= 280:
            break
    p["lv"] = dict(condition=str(condition), e_long=e_long.tolist(), e_rv=e_rv.tolist(),
                   e_sup=e_sup.tolist(), L_cav=L_cav, r_cav=r_cav, wall=t,
                   expected_cavity_ml=cav, expected_myocardium_g=myo * MYOCARDIUM_DENSITY_G_PER_ML,
                   papillary=[[_u(rng, 0.35, 0.55), _u(rng, 140, 165)],
                              [_u(rng, 0.35, 0.55), _u(rng, 215, 245)]])
    p["rv"] = dict(scale=_u(rng, 0.85, 1.3), wall=_u(rng, 3.0, 4.5))
    p["la"] = dict(scale=_u(rng, 0.8, 1.45) ** (1 / 3) * s)
    p["ra"] = dict(scale=_u(rng, 0.85, 1.35) ** (1 / 3) * s)
    # Small random rotation of the whole heart about H and an elastic deformation seed.
    p["heart_rotation"] = shapes.rotation_matrix(rng, 8.0).tolist()
    p["deformation"] = dict(amplitude_mm=_u(rng, 0.8, 2.5), seed=int(rng.integers(2**31)))
    p["tortuosity_mm"] = _u(rng, 0.5, 3.0)

    def heart_point(offset_mm):
        """Canonical offset from H (mm, at heart scale 1) to the patient frame."""
        R = np.asarray(p["heart_rotation"])
        return (H + s * (R @ np.asarray(offset_mm, dtype=float))).tolist()

    jit = lambda v, a=3.0: (np.asarray(v, float) + rng.uniform(-a, a, 3)).tolist()
    p["points"] = pts = {}
    # Aorta: aortic valve anterior-right of the mitral valve, ascending aorta, arch, descending
    # aorta on the left of the spine.
    # vertebral body centre 12 mm in front of the posterior pleura: the lungs wrap around it
    y_spine = p["body"]["b"] - (p["body"]["skin"] + fat + p["body"]["muscle"] + 9.0) - p["body"]["posterior_muscle"] - 12
    p["y_spine"] = y_spine
    r_aorta = _u(rng, 12.5, 16.5)  # ascending; the root (sinus) is 15 % wider: 29-38 mm
    p["aorta_radius"] = r_aorta
    arch_top = H[2] + _u(rng, 80, 100) * s
    p["arch_top_z"] = arch_top
    desc_x = _u(rng, 26, 34)
    desc_y = y_spine - _u(rng, 14, 22)
    pts["aorta"] = [heart_point([-12, -16, 8]), heart_point(jit([-16, -24, 24])),
                    heart_point(jit([-18, -28, 45])), heart_point(jit([-12, -24, 68])),
                    [H[0] - 8, H[1] - 2, arch_top - r_aorta],
                    [desc_x - 5, desc_y - 10, arch_top - r_aorta - 4],
                    [desc_x, desc_y, arch_top - 45], [desc_x, desc_y, H[2] - 40],
                    [desc_x - 4, desc_y + 2, H[2] - 140], [desc_x - 8, desc_y + 4, H[2] - 260]]
    # Arch branches and subclavian arteries (IMA origins).
    top = arch_top
    pts["brachiocephalic"] = [[H[0] - 14, H[1], top - 4], [-22, H[1] - 4, top + 30]]
    pts["right_subclavian"] = [[-22, H[1] - 4, top + 30], [-50, H[1] + 2, top + 40], [-90, H[1] + 10, top + 30]]
    pts["right_carotid"] = [[-22, H[1] - 4, top + 30], [-26, H[1], top + 120]]
    pts["left_carotid"] = [[H[0] - 6, H[1] + 6, top - 2], [12, H[1] + 6, top + 120]]
    pts["left_subclavian"] = [[H[0] + 2, H[1] + 14, top - 4], [35, H[1] + 18, top + 34], [60, H[1] + 12, top + 42], [95, H[1] + 18, top + 32]]
    # Pulmonary artery: valve anterior-left-superior of the aortic valve, trunk, bifurcation
    # under the arch, right branch behind the ascending aorta.
    pts["pa_trunk"] = [heart_point([8, -40, 18]), heart_point(jit([18, -32, 40])), heart_point(jit([12, -8, 56]))]
    pts["lpa"] = [pts["pa_trunk"][-1], heart_point(jit([32, 4, 60])), heart_point(jit([55, 12, 54])), heart_point([70, 16, 46])]
    pts["rpa"] = [pts["pa_trunk"][-1], heart_point(jit([-6, 6, 56])), heart_point(jit([-32, 10, 54])), heart_point([-62, 14, 48])]
    p["pa_radius"] = _u(rng, 11, 15) * s
    # Veins.
    pts["svc"] = [[H[0] - 50, H[1] + 0, H[2] + 110], heart_point(jit([-44, -4, 60])), heart_point([-44, 0, 30])]
    pts["ivc"] = [[H[0] - 30, H[1] + 24, H[2] - 200], [H[0] - 36, H[1] + 18, H[2] - 70], heart_point([-42, 8, -22])]
    pts["right_bcv"] = [[-80, H[1] + 10, H[2] + 150], [-56, H[1] + 2, H[2] + 125], pts["svc"][0]]
    pts["left_bcv"] = [[80, H[1] + 10, H[2] + 145], [35, H[1] - 18, H[2] + 125], [-20, H[1] - 10, H[2] + 116], pts["svc"][0]]
    p["svc_radius"] = _u(rng, 8, 11)
    p["injection_side"] = "right" if rng.uniform() < 0.8 else "left"
    # Pulmonary veins: from the left atrium to the hila.
    pv_r = _u(rng, 5.5, 7.0) * s
    p["pv_radius"] = pv_r
    pts["pv"] = {
        "left_superior": [heart_point([22, 22, 22]), heart_point(jit([40, 20, 28])), heart_point([58, 16, 34])],
        "left_inferior": [heart_point([22, 30, 2]), heart_point(jit([42, 32, -4])), heart_point([60, 34, -10])],
        "right_superior": [heart_point([-30, 20, 22]), heart_point(jit([-46, 16, 26])), heart_point([-62, 12, 30])],
        "right_inferior": [heart_point([-30, 28, 2]), heart_point(jit([-46, 30, -2])), heart_point([-62, 32, -8])],
    }
    pts["la_centre"] = heart_point([-6, 18, 12])
    pts["ra_centre"] = heart_point([-46, 2, 0])
    pts["laa"] = [heart_point([20, 6, 20]), heart_point(jit([34, -8, 22], 2)), heart_point(jit([42, -20, 14], 2))]
    pts["raa"] = [heart_point([-40, -18, 16]), heart_point(jit([-28, -34, 24], 2)), heart_point(jit([-16, -40, 20], 2))]
    # Airway and oesophagus.
    p["carina_z"] = float(pts["pa_trunk"][-1][2] + _u(rng, -5, 8))
    p["trachea_y"] = y_spine - _u(rng, 38, 46)
    p["esophagus"] = dict(x=_u(rng, 0, 10), y=y_spine - _u(rng, 24, 28), r=_u(rng, 6, 8))
    # Diaphragm: the heart rests on the left dome; the right dome (liver) is higher.
    p["dome"] = dict(right_rise=_u(rng, 10, 30))
    # Spine / ribs / sternum.
    p["vertebra"] = dict(height=_u(rng, 20, 24), disc=_u(rng, 5, 7), radius=_u(rng, 15, 19))
    p["ribs"] = dict(spacing=_u(rng, 22, 27), drop=_u(rng, 70, 110), first_z=H[2] + _u(rng, 110, 135))
    # manubrium top (jugular notch) above the arch; the subclavian arteries (IMA origins) higher still
    p["sternum"] = dict(half_width=_u(rng, 14, 19), thickness=_u(rng, 10, 14), top_z=arch_top + _u(rng, 12, 25),
                        xiphoid_z=H[2] - _u(rng, 60, 90))
    # Internal mammary arteries: distance from the sternal border (6-18 mm: 7-21 mm measured beside
    # the sternal body on LIDC-IDRI-0001) and radius (1.6-2.8 mm diameter; 1.5-2.1 mm wide at half
    # maximum on LIDC-IDRI-0001).
    p["ima"] = {side: dict(lateral=_u(rng, 6, 18), radius=_u(rng, 0.8, 1.4), vein_radius=_u(rng, 1.0, 1.6),
                           vein_side=float(rng.choice([-1.0, 1.0])), phase=_u(rng, 0, 6.3))
                for side in ("left", "right")}
    # Coronary arteries (radii in mm, 1.5-4.5 mm diameter at the origin).
    p["coronary"] = dict(lm=_u(rng, 1.8, 2.25), lad=_u(rng, 1.4, 1.9), lcx=_u(rng, 1.2, 1.7), rca=_u(rng, 1.4, 2.0),
                         lad_angle=_u(rng, 45, 65), pda_angle=_u(rng, -70, -50), lm_angle=_u(rng, 75, 95),
                         diag_angle=_u(rng, 100, 130), om_angle=_u(rng, 165, 195),
                         dominance="right" if rng.uniform() < 0.85 else "left")
    p["coronary_sinus"] = dict(radius=_u(rng, 3.5, 5.0))
    # Pulmonary vessel trees: random branching from the hila.
    p["lung_tree_seed"] = int(rng.integers(2**31))
    # Calcified plaques.
    n_cor = 0 if rng.uniform() < 0.35 else int(rng.integers(1, 9))
    p["plaques"] = dict(
        coronary=[dict(vessel=str(rng.choice(["lad", "lad", "lcx", "rca", "rca", "lm"])), t=_u(rng, 0.02, 0.6),
                       volume_mm3=float(np.exp(rng.uniform(np.log(1), np.log(300)))), peak_hu=_u(rng, 130, 1500),
                       angle=_u(rng, 0, 2 * np.pi)) for _ in range(n_cor)],
        aortic_wall=[dict(t=_u(rng, 0.3, 0.95), angle=_u(rng, 0, 2 * np.pi),
                          volume_mm3=float(np.exp(rng.uniform(np.log(5), np.log(500)))), peak_hu=_u(rng, 130, 1500))
                     for _ in range(0 if rng.uniform() < 0.4 else int(rng.integers(1, 7)))],
        aortic_valve=[dict(angle=_u(rng, 0, 2 * np.pi), volume_mm3=float(np.exp(rng.uniform(np.log(5), np.log(500)))),
                           peak_hu=_u(rng, 200, 1500))
                      for _ in range(0 if rng.uniform() < 0.6 else int(rng.integers(1, 4)))],
        mitral_annulus=[dict(angle=_u(rng, 120, 300), volume_mm3=float(np.exp(rng.uniform(np.log(10), np.log(500)))),
                             peak_hu=_u(rng, 200, 1500))
                        for _ in range(0 if rng.uniform() < 0.75 else int(rng.integers(1, 3)))],
    )
    p["pericardial_fat_mm"] = _u(rng, 1, 5)
    p["epicardial_fat_mm"] = _u(rng, 1, 3)
    # Upper abdomen below the diaphragm (drawn last so the draws above stay as they were).
    p["abdomen"] = dict(
        liver_depth=_u(rng, 110, 170),        # right lobe: how far it reaches below the right dome (mm)
        liver_tip_x=_u(rng, 15, 75),          # left lobe tip, mm left of the midline (anterior)
        liver_left_depth=_u(rng, 35, 70),     # left lobe thickness below the left dome (mm)
        hepatic_vein_angles=[_u(rng, -2.6, -1.9), _u(rng, -1.7, -1.2), _u(rng, -0.9, -0.3)],
        stomach=dict(x=_u(rng, 40, 70), y=_u(rng, -35, 5), drop=_u(rng, 30, 55), semi=[_u(rng, 35, 55),
                     _u(rng, 30, 50), _u(rng, 35, 60)], wall=_u(rng, 3, 6),
                     gas_mm=float(rng.choice([0.0, _u(rng, 5, 45)], p=[0.25, 0.75]))),
        spleen=dict(drop=_u(rng, 25, 60), semi=[_u(rng, 18, 28), _u(rng, 40, 60), _u(rng, 35, 55)],
                    angle=_u(rng, 0.35, 0.8)),
        colon=dict(drop=_u(rng, 55, 95), radius=_u(rng, 12, 22), gas=_u(rng, 0.3, 1.0),
                   x_left=_u(rng, 50, 90), x_right=_u(rng, -60, 0), y=_u(rng, -0.75, -0.45)),
        table=dict(gap=_u(rng, 0, 10), thickness=_u(rng, 3, 6), sag=_u(rng, 15, 40)),
    )
    # Anterior chest wall (generator 0.2.2-0.2.3; drawn last so the draws above stay as they were): how
    # far the sternum's posterior surface lies behind the back of the costal cartilages (mm); per side,
    # the extrapleural fat around the IMA (mm) and whether its vein shows beside it.
    p["chest_wall"] = dict(sternum_behind_cartilage=_u(rng, 0, 4),
                           ima_fat_sleeve_mm={side: _u(rng, *IMA_FAT_SLEEVE_MM) for side in ("left", "right")},
                           ima_vein={side: bool(rng.uniform() < IMA_VEIN_PROBABILITY) for side in ("left", "right")})
    # generator 0.2.4: the pectoral muscle thins toward the sternum (drawn last, as above)
    p["chest_wall"].update(pectoral_reach_mm=_u(rng, *PECTORAL_REACH_MM),
                           parasternal_sheet_mm=_u(rng, *PARASTERNAL_SHEET_MM))
    # generator 0.2.5: the IMAs run in a plate of extrapleural fat, not in the lung (drawn last, as above)
    p["chest_wall"]["ima_fat_plate_mm"] = {side: _u(rng, *IMA_FAT_PLATE_MM) for side in ("left", "right")}
    # generator 0.2.6: the abdominal aorta in front of the spine, the crura around it (drawn last, as above);
    # 0.2.7: its width per patient
    _place_abdominal_aorta(p, rng)
    # generator 0.2.7: the body bends forward below the chest (drawn last, as above)
    p["posture"] = dict(bend_start_z=heart_lowest_z(p) + _u(rng, *BEND_START_ABOVE_HEART_BOTTOM_MM),
                        bend_onset_mm=_u(rng, *BEND_ONSET_MM), bend_slope=_u(rng, *BEND_SLOPE))
    # generator 0.2.10: muscle, not fat, between the costal cartilages beside the sternum (drawn last, as above)
    p["chest_wall"]["intercostal_muscle_mm"] = _u(rng, *INTERCOSTAL_MUSCLE_MM)
    return p


def sagittal_bend(p: dict) -> shapes.SagittalBend | None:
    """The body's forward bend below the chest drawn for anatomy ``p`` (None for parameters of generators up
    to 0.2.6, which drew a straight body)."""
    posture = p.get("posture")
    if posture is None:
        return None
    return shapes.SagittalBend(posture["bend_start_z"], posture["bend_slope"], posture["bend_onset_mm"])


def _place_abdominal_aorta(p: dict, rng: np.random.Generator) -> None:
    """Move the abdominal aorta's control points (8 and 9 of ``p["points"]["aorta"]``, 140 and 260 mm below
    the heart's centre) in front of the vertebral bodies, just left of the midline, and draw the crura's
    thickness and length into ``p["aorta_course"]`` (painted by ``_paint_upper_abdomen``; see
    :data:`ABDOMINAL_AORTA_X_MM`). The thoracic part stays where it was: moved against the spine
    it ran through the synthetic left atrium, which lies further back than a real one."""
    H = np.asarray(p["H"])
    r_ao = p["aorta_radius"]
    y_spine = p["y_spine"]
    rx = p["vertebra"]["radius"]
    ry = 0.85 * rx  # the vertebral body's cross-section, as _paint_spine draws it
    course = dict(x_abdomen=_u(rng, *ABDOMINAL_AORTA_X_MM), gap=_u(rng, *AORTA_SPINE_GAP_MM),
                  crus_mm=_u(rng, *CRUS_THICKNESS_MM), crus_length_mm=_u(rng, *CRUS_LENGTH_MM))
    f8 = _u(rng, *ABDOMINAL_AORTA_FRACTION)
    course["radius_fractions"] = [f8, f8 * _u(rng, *ABDOMINAL_AORTA_TAPER)]  # at control points 8 and 9
    p["aorta_course"] = course
    angles = np.linspace(0, 2 * np.pi, 721)
    ellipse = np.stack([rx * np.cos(angles), y_spine + ry * np.sin(angles)], axis=1)

    def against_spine(x: float, radius: float) -> float:
        """y (mm) of a centre at x whose circle of ``radius`` lies ``gap`` in front of the vertebral body."""
        lo, hi = y_spine, y_spine - ry - radius - course["gap"] - 40.0  # inside the vertebra ... far in front
        for _ in range(40):  # bisection: the clearance to the ellipse grows as the centre moves forward
            y = 0.5 * (lo + hi)
            clearance = np.min(np.hypot(ellipse[:, 0] - x, ellipse[:, 1] - y)) - radius
            lo, hi = (y, hi) if clearance < course["gap"] else (lo, y)
        return float(0.5 * (lo + hi))

    pts = p["points"]["aorta"]
    x_a = course["x_abdomen"]
    f8, f9 = course["radius_fractions"]
    pts[8] = [x_a + 3, against_spine(x_a + 3, f8 * r_ao), H[2] - 140]
    pts[9] = [x_a, against_spine(x_a, f9 * r_ao), H[2] - 260]


# -- geometry helpers built from the parameters ----------------------------------------------------
class Body:
    """Chest wall geometry: nested elliptical cross-sections varying with z (mm)."""

    def __init__(self, p: dict):
        b = p["body"]
        self.a, self.b, self.taper = b["a"], b["b"], b["taper"]
        self.skin, self.fat, self.muscle, self.post = b["skin"], b["fat"], b["muscle"], b["posterior_muscle"]
        self.n = b["squareness"]
        wall = p.get("chest_wall", {})
        self.sternum_half_width = float(p["sternum"]["half_width"])
        # None (parameters of generator <= 0.2.3): muscle all round, as those versions drew it
        self.pectoral_reach = wall.get("pectoral_reach_mm")
        self.parasternal_sheet = wall.get("parasternal_sheet_mm", 0.0)

    def wall_layers(self, X, Y, d_body):
        """The chest wall's layers from the skin inward, one at a time (a generator: each is a whole grid):
        (anatomy key, tissue, signed distance (mm) of the layer's outer surface, negative inside it), for
        painting one over the other in this order.

        ``X``, ``Y`` are LPS coordinates (mm) and ``d_body`` :meth:`outer_sdf` on the same points. The
        last layer is the thoracic cavity (mediastinal fat). Beside the sternum the muscle layer is a
        thin sheet with fat behind it, over the sternum there is none (:data:`PECTORAL_REACH_MM`).
        """
        yield "skin", "skin", d_body
        yield "subcutaneous_fat", "fat", d_body + np.float32(self.skin)
        yield "muscle", "muscle", d_body + np.float32(self.muscle_outer)
        if self.pectoral_reach is not None:
            beyond_border = np.abs(X) - np.float32(self.sternum_half_width)
            sheet = np.float32(self.parasternal_sheet) * _smoothstep(beyond_border / np.float32(4.0))
            # 1 beside the sternum in front, 0 from the reach on and on the chest's sides and back
            thin = (1 - _smoothstep(beyond_border / np.float32(self.pectoral_reach))) * np.clip(
                -Y / np.float32(0.4 * self.b), 0, 1)
            band = np.float32(self.cavity - self.muscle_outer) - sheet  # the muscle band less the sheet
            # labelled as the cavity's fat, which it runs into between the cartilages
            yield "mediastinal_fat", "fat", d_body + (np.float32(self.muscle_outer) + sheet + (1 - thin) * band)
        yield "mediastinal_fat", "fat", d_body + np.float32(self.cavity) + self.posterior_extra(Y)

    def _scale(self, z):
        # The chest narrows toward the apex and slightly toward the abdomen.
        zz = np.clip((z - 60.0) / 150.0, 0.0, 1.0)
        return 1.0 - self.taper * zz * zz

    def outer_sdf(self, X, Y, Z):
        """Signed distance (mm, first-order) to the skin: a superellipse cross-section
        (|x/a|^n + |y/b|^n = 1, n = squareness) whose half-width tapers with z."""
        n = np.float32(self.n)
        a = (self.a * self._scale(Z)).astype(np.float32)
        ux = np.abs(X / a) + np.float32(1e-6)
        vy = np.abs(Y / np.float32(self.b)) + np.float32(1e-6)
        pu, pv = ux ** n, vy ** n
        f = (pu + pv) ** (1 / n)
        # gradient of f: d f/d x = (|u|^(n-1) / a) f^(1-n); same for y
        gx = (pu / ux) / a
        gy = (pv / vy) / np.float32(self.b)
        grad = np.sqrt(gx * gx + gy * gy) * f ** (1 - n)
        return (f - 1) / np.maximum(grad, np.float32(1e-6))

    def depth_sdf(self, X, Y, Z, inset: float, posterior_fraction: float = 0.0):
        """Signed distance to the surface ``inset`` mm inside the skin, deeper posteriorly by
        ``posterior_fraction`` of the back-muscle thickness (as the thoracic cavity is painted)."""
        return self.outer_sdf(X, Y, Z) + np.float32(inset) + self.posterior_extra(Y, posterior_fraction)

    def posterior_extra(self, Y, fraction: float = 1.0):
        """How much deeper (mm) the thoracic cavity starts at ``Y`` (LPS y in mm, posterior positive;
        array or scalar, float32 result of the same shape) than anteriorly: ``fraction`` of the
        back-muscle thickness, growing as (Y / b)² behind the chest's centre, 0 in front of it."""
        return np.float32(fraction * self.post) * np.clip(Y / np.float32(self.b), 0, 1) ** 2

    @property
    def muscle_outer(self):
        return self.skin + self.fat

    @property
    def rib_centre(self):
        return self.skin + self.fat + self.muscle + 5.0

    @property
    def cavity(self):
        return self.skin + self.fat + self.muscle + 8.0

    def ray_point(self, inset: float, posterior_fraction: float, angle: float, z: float) -> list:
        """Point on the surface ``inset`` mm inside the skin along the axial ray from the chest
        centre at ``angle`` (radians; 0 = posterior, pi/2 = patient left, pi = anterior)."""
        t = np.arange(0.0, self.a + self.b, 0.25, dtype=np.float32)
        X = t * np.float32(np.sin(angle))
        Y = t * np.float32(np.cos(angle))
        d = self.depth_sdf(X, Y, np.full_like(t, z), inset, posterior_fraction)
        i = int(np.argmax(d > 0))  # first point outside
        return [float(X[i]), float(Y[i]), float(z)]

    def point_on(self, inset: float, posterior_fraction: float, x: float, z: float) -> list:
        """Point on the anterior surface ``inset`` mm inside the skin at lateral position x (mm)."""
        Y = np.arange(-self.b - 5.0, 0.0, 0.25, dtype=np.float32)
        d = self.depth_sdf(np.full_like(Y, x), Y, np.full_like(Y, z), inset, posterior_fraction)
        i = int(np.argmax(d <= 0))  # first point inside, coming from the front
        return [float(x), float(Y[i]), float(z)]


def lv_frame(p):
    lv = p["lv"]
    R_h = np.asarray(p["heart_rotation"])
    e_long = R_h @ np.asarray(lv["e_long"])
    e_rv = R_h @ np.asarray(lv["e_rv"])
    e_sup = R_h @ np.asarray(lv["e_sup"])
    return np.asarray(p["H"]), e_long, e_rv, e_sup


def lv_surface_point(p, frac_long: float, angle_deg: float, out_mm: float, base_mm: float = 0.0):
    """A point at ``out_mm`` outside the LV epicardium, at fraction ``frac_long`` of the long
    axis (0 = base, 1 = apex) and short-axis angle ``angle_deg`` (0 = toward the RV, 90 =
    superior-anterior)."""
    H, e_long, e_rv, e_sup = lv_frame(p)
    lv = p["lv"]
    a_out = lv["L_cav"] + 0.8 * lv["wall"]
    r_out = lv["r_cav"] + lv["wall"]
    a = frac_long * a_out
    radial = r_out * np.sqrt(max(1 - (a / a_out) ** 2, 0.02)) + out_mm
    ang = np.deg2rad(angle_deg)
    direction = np.cos(ang) * e_rv + np.sin(ang) * e_sup
    return H + (a + base_mm) * e_long + radial * direction


def heart_lowest_z(p) -> float:
    """Lowest z (mm) of the ventricles' outer surfaces (where the heart rests on the diaphragm)."""
    H, e_long, e_rv, e_sup = lv_frame(p)
    lv = p["lv"]
    a_out, r_out = lv["L_cav"] + 0.8 * lv["wall"], lv["r_cav"] + lv["wall"]
    g = np.linspace(0, np.pi, 13)
    dirs = np.array([[np.cos(t), np.sin(t) * np.cos(f), np.sin(t) * np.sin(f)] for t in g for f in np.linspace(0, 2 * np.pi, 25)])
    dirs = dirs[dirs[:, 0] >= 0]  # the part beyond the base plane
    frame = np.stack([e_long, e_rv, e_sup], axis=1)
    lv_pts = H + (dirs * [a_out, r_out, r_out]) @ frame.T
    return float(lv_pts[:, 2].min())


def coronary_paths(p) -> dict:
    """Centre lines (N, 3) mm and radii (N,) of the coronary arteries and their main branches."""
    c = p["coronary"]
    H, e_long, e_rv, e_sup = lv_frame(p)
    aorta0 = np.asarray(p["points"]["aorta"][0])
    aorta1 = np.asarray(p["points"]["aorta"][1])
    r_root = p["aorta_radius"] * 1.1
    up = _unit(aorta1 - aorta0)
    paths = {}
    gap = lambda r: r + 0.8  # vessel centre just outside the epicardium
    # Left main from the left coronary sinus toward the left AV groove.
    left_dir = _unit(np.cross(up, e_rv) if np.dot(np.cross(up, e_rv), e_sup) > 0 else -np.cross(up, e_rv))
    lm0 = aorta0 + 0.4 * r_root * up + r_root * _unit(left_dir + 0.3 * e_sup - 0.5 * e_rv)
    bif = lv_surface_point(p, 0.02, c["lm_angle"], gap(c["lm"]), base_mm=-4)
    paths["left_main_coronary_artery"] = (np.array([lm0, (lm0 + bif) / 2, bif]), np.array([c["lm"], c["lm"], c["lm"]]))
    lad = [bif] + [lv_surface_point(p, f, c["lad_angle"] + 6 * np.sin(7 * f), gap(c["lad"] * (1 - 0.45 * f)))
                   for f in np.linspace(0.08, 0.97, 9)]
    lad.append(lv_surface_point(p, 1.0, c["pda_angle"] * 0.3 + c["lad_angle"] * 0.7, gap(0.8)))
    paths["left_anterior_descending_artery"] = (np.array(lad), np.linspace(c["lad"], 0.75, len(lad)))
    diag = [lv_surface_point(p, f, c["lad_angle"] + (c["diag_angle"] - c["lad_angle"]) * min(1, (f - 0.25) * 4), gap(1.0))
            for f in np.linspace(0.25, 0.75, 6)]
    paths["diagonal"] = (np.array(diag), np.linspace(1.1, 0.7, len(diag)))
    lcx_end = 270.0 if c["dominance"] == "left" else 215.0
    lcx = [bif] + [lv_surface_point(p, 0.0, a, gap(c["lcx"]), base_mm=-5) for a in np.linspace(c["lm_angle"] + 15, lcx_end, 8)]
    paths["left_circumflex_artery"] = (np.array(lcx), np.linspace(c["lcx"], 0.8, len(lcx)))
    om = [lv_surface_point(p, f, c["om_angle"] + 10 * f, gap(1.0), base_mm=-5 * (1 - f)) for f in np.linspace(0.02, 0.7, 6)]
    paths["obtuse_marginal"] = (np.array(om), np.linspace(1.1, 0.7, len(om)))
    # RCA from the right coronary sinus along the right AV groove to the crux, then the PDA.
    rca0 = aorta0 + 0.4 * r_root * up + r_root * _unit(e_rv + 0.4 * e_sup)
    r_rv = p["lv"]["r_cav"] + p["lv"]["wall"] + 2 * 14 * p["rv"]["scale"] + 4
    rca = [rca0]
    for a in np.linspace(35, -40, 6):
        ang = np.deg2rad(a)
        rca.append(H - 8 * e_long + r_rv * 0.85 * (np.cos(ang) * e_rv + np.sin(ang) * e_sup))
    crux = lv_surface_point(p, 0.02, c["pda_angle"] - 15, gap(c["rca"] * 0.7), base_mm=-4)
    rca.append(crux)
    rca_radii = list(np.linspace(c["rca"], c["rca"] * 0.75, len(rca)))
    if c["dominance"] == "right":
        for f in np.linspace(0.1, 0.8, 6):
            rca.append(lv_surface_point(p, f, c["pda_angle"], gap(0.9)))
        rca_radii += list(np.linspace(c["rca"] * 0.6, 0.7, 6))
    paths["right_coronary_artery"] = (np.array(rca), np.array(rca_radii))
    return paths


def _tortuous(rng, points, amount_mm, step=3.0):
    """Smooth curve through control points with random lateral perturbation (tortuosity)."""
    pts = np.asarray(points, dtype=float).copy()
    if len(pts) > 2 and amount_mm > 0:
        pts[1:-1] += rng.normal(scale=amount_mm, size=pts[1:-1].shape)
    return shapes.smooth_curve(pts, step)


def _resample_radii(curve, control_points, control_radii):
    """Radius along a curve, interpolated by nearest control point's arc position."""
    control_points = np.asarray(control_points, float)
    d = np.linalg.norm(curve[:, None, :] - control_points[None, :, :], axis=2)
    s_ctrl = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(control_points, axis=0), axis=1))])
    s_curve = s_ctrl[np.argmin(d, axis=1)]
    s_curve = np.maximum.accumulate(s_curve)
    return np.interp(s_curve, s_ctrl, control_radii)


# -- painting --------------------------------------------------------------------------------------
def tissue_lookup(labels_over):
    table = np.zeros(256, dtype=np.float32)
    for name in labels_over:
        table[L[name]] = 1.0
    return table


#: The share of the right atrium's blood that is opacified SVC blood in a contrast scan, drawn per case; the
#: rest is IVC blood. In LIDC-IDRI-0001 (arterial-phase chest CT, injection in an arm vein) the right atrium is
#: swirls of dense contrast through less opacified blood: 5th / 25th / 50th / 75th / 95th HU percentiles
#: 54 / 202 / 317 / 455 / 747 beside a 376 HU left ventricle and a 2000 HU SVC
#: (``benchmarks/right_atrium_appearance.py``). Up to generator 0.2.10 the atrium was evenly enhanced in every
#: contrast scan (150-350 HU on CTA, the left heart's HU on routine contrast chest CT, with +-40 HU waves 45 mm
#: and longer). A share near the top with the SVC and IVC alike is a venous-phase scan's evenly enhanced atrium.
RA_OPACIFIED_SHARE = (0.05, 0.8)
#: How much of the SVC's excess over IVC blood the brightest swirls keep (contrast diluted in the atrium).
RA_SWIRL_DILUTION = (0.2, 0.5)
#: Wavelengths (mm) of the swirls' waves.
RA_SWIRL_WAVELENGTH_MM = (8.0, 25.0)
#: Below this SVC-over-IVC difference (HU) there is nothing to see mixing: the atrium is one blood.
RA_MIXING_MIN_CONTRAST_HU = 100.0


def right_atrial_blood(rng: np.random.Generator, ivc_hu: float, svc_hu: float, waves: int = 16) -> dict:
    """How to paint the right atrium's blood: keyword arguments for :meth:`shapes.Canvas.paint`.

    With contrast (the SVC at least :data:`RA_MIXING_MIN_CONTRAST_HU` brighter than the IVC) the atrium is
    IVC blood (``ivc_hu``) with swirls of SVC blood diluted to ``ivc + (svc - ivc) * dilution``:
    at each point the opacified share is a smooth step of a random field (``waves`` plane waves of
    :data:`RA_SWIRL_WAVELENGTH_MM`, unit variance) at the level that makes a drawn share of
    :data:`RA_OPACIFIED_SHARE` opacified. The texture is a function of LPS mm, so the atrium and its
    appendage, painted apart, share one field. Without contrast: ``{}`` (the tissue's own HU).
    ``rng`` draws the same numbers either way.

    ``ivc_hu``, ``svc_hu``: the case's IVC and SVC blood, HU. Returns ``{"value": HU, "texture": f}`` where
    ``f(X, Y, Z)`` takes LPS coordinates in mm (broadcastable arrays, as the canvas gives) and returns the HU
    added to ``value`` there (0 to ``(svc - ivc) * dilution``); or ``{}``. Raises nothing. A model of
    contrast inflow mixing, calibrated on LIDC-IDRI-0001 (:data:`RA_OPACIFIED_SHARE`), not a published one.
    """
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavenumbers = 2.0 * np.pi / rng.uniform(*RA_SWIRL_WAVELENGTH_MM, waves)
    phases = rng.uniform(0.0, 2.0 * np.pi, waves)
    share = float(rng.uniform(*RA_OPACIFIED_SHARE))
    dilution = float(rng.uniform(*RA_SWIRL_DILUTION))
    if svc_hu - ivc_hu < RA_MIXING_MIN_CONTRAST_HU:
        return {}
    level = NormalDist().inv_cdf(1.0 - share)  # the field exceeds it on ``share`` of the atrium
    swirl_hu = (svc_hu - ivc_hu) * dilution
    k = (directions * wavenumbers[:, None]).astype(np.float32)

    def texture(X, Y, Z):
        field = sum(np.cos(k[n, 0] * X + k[n, 1] * Y + k[n, 2] * Z + phases[n]) for n in range(waves))
        field = field * np.float32(np.sqrt(2.0 / waves))  # each wave has variance 1/2
        return swirl_hu / (1.0 + np.exp(-(field - level) / 0.3))

    return {"value": float(ivc_hu), "texture": texture}


SOFT = ("subcutaneous_fat", "muscle", "mediastinal_fat", "lung", "pericardial_fat", "upper_abdomen")


def paint_anatomy(canvas: shapes.Canvas, p: dict) -> dict:
    """Paint the whole anatomy described by ``p`` (from :func:`sample_anatomy`) on ``canvas``.

    Returns geometry needed later (SVC centre line for streaks, heart box for motion blur,
    structure extents)."""
    rng = np.random.default_rng(p["lung_tree_seed"])
    body = Body(p)
    z_lo, z_hi = float(canvas.z[0]) - 5, float(canvas.z[-1]) + 5
    x_ext = p["body"]["a"] + 5
    y_ext = p["body"]["b"] + 5
    full_lo, full_hi = [-x_ext, -y_ext, z_lo], [x_ext, y_ext, z_hi]
    info: dict = {}

    # Body wall: skin, subcutaneous fat, muscle, then the thoracic cavity as mediastinal fat,
    # all from one distance field (offsets of the skin surface: walls of constant thickness,
    # thicker posteriorly where the back muscles are).
    sl_full = canvas.box(full_lo, full_hi)
    X, Y, Z = canvas.coordinates(sl_full, False)
    d_body = body.outer_sdf(X, Y, Z)
    for key, tissue, d_cavity in body.wall_layers(X, Y, d_body):  # the last layer is the thoracic cavity
        canvas.paint_distance(d_cavity, sl_full, L[key], tissue)
    del d_body

    # Diaphragm: union of two domes; below it liver (right) and upper abdomen (left).
    heart_bottom = heart_lowest_z(p)
    left_top = heart_bottom - 4.0
    right_top = left_top + p["dome"]["right_rise"]
    info["dome_top"] = right_top
    zl = _dome_z(left_top, LEFT_DOME_X, X, Y)
    zr = _dome_z(right_top, RIGHT_DOME_X, X, Y)
    dome = np.maximum(zl, zr)
    below = Z - dome
    abdomen = np.maximum(d_cavity, below)
    # The diaphragm (4 mm of muscle), then visceral fat around the organs, which are painted over
    # it (the liver here, the rest in _paint_upper_abdomen).
    canvas.paint_distance(abdomen, sl_full, L["upper_abdomen"], "muscle")
    canvas.paint_distance(np.maximum(abdomen, below + np.float32(4.0)), sl_full, L["upper_abdomen"], "fat")
    liver = _liver_sdf(p, X, Y, Z, abdomen, below, left_top, right_top)
    canvas.paint_distance(liver, sl_full, L["liver"], "liver")
    del abdomen, liver

    # Lungs: cavity above the diaphragm, lateral to the mediastinum, below the apex, around the
    # posterior mediastinum (spine, aorta, oesophagus).
    y_spine = p["y_spine"]
    apex_z = p["ribs"]["first_z"] + 25
    post_med = shapes.elliptic_cylinder_z(lambda z: np.float32(0), lambda z: np.float32(y_spine - 10),
                                          lambda z: np.float32(28), lambda z: np.float32(40))(X, Y, Z)
    lung = np.maximum(d_cavity, np.float32(3) - below)
    del d_cavity, below
    # Apex: a paraboloid, falling off more slowly anteriorly, so the anterior lungs reach the manubrium
    # behind the chest wall (as on LIDC-IDRI-0001; a symmetric fall-off left a broad triangle of
    # anterior mediastinal fat above the heart, where the IMAs run).
    y_fall = np.where(Y < 10, np.float32(0.005), np.float32(0.012))
    lung = np.maximum(lung, Z - np.float32(apex_z) + np.float32(0.012) * (np.abs(X) - 70) ** 2 + y_fall * (Y - 10) ** 2)
    del y_fall
    lung = np.maximum(lung, -post_med)
    lung = np.maximum(lung, np.float32(7.0) - np.abs(X))  # lateral of x = +-7 mm
    canvas.paint_distance(lung, sl_full, L["lung"], "lung")
    del lung

    # Airway: trachea to the carina and the main bronchi.
    carina = np.array([-2.0, p["trachea_y"], p["carina_z"]])
    trachea = [[-2, p["trachea_y"] - 6, z_hi + 10], [-2, p["trachea_y"] - 2, carina[2] + 40], carina]
    bronchi = {1: [carina, carina + [28, 6, -18], carina + [50, 10, -32]],
               -1: [carina, carina + [-22, 4, -12], carina + [-48, 8, -24]]}
    for path, r in [(trachea, 9.0)] + [(b, 7.0) for b in bronchi.values()]:
        curve = shapes.smooth_curve(path, 4.0)
        canvas.paint_tube(curve, r, L["airway"], "muscle")
    for path, r in [(trachea, 7.5)] + [(b, 5.5) for b in bronchi.values()]:
        curve = shapes.smooth_curve(path, 4.0)
        canvas.paint_tube(curve, r, L["airway"], "airway_air")

    # Pulmonary vessels: random trees from the hila (arteries from the PA branches, veins toward
    # the pulmonary veins), only inside the lungs.
    over_lung = tissue_lookup(["lung"])
    roots = [(np.asarray(p["points"]["lpa"][-1]), "blood_pa", 1), (np.asarray(p["points"]["rpa"][-1]), "blood_pa", -1)]
    roots += [(np.asarray(v[-1]), "blood_left", 1 if "left" in k else -1) for k, v in p["points"]["pv"].items()]
    for start, tissue, side in roots:
        base_dir = _unit([side * 1.0, 0.1, 0.0])
        for d0 in (_unit(base_dir + [0, 0, 0.8]), _unit(base_dir + [0, 0.2, -0.8]), _unit(base_dir + [0, -0.6, 0]),
                   _unit(base_dir + [0, 0.7, 0.2]), _unit(base_dir + [0, -0.5, -0.6]), _unit(base_dir + [0, 0.5, 1.0])):
            _grow_tree(canvas, rng, start, d0, radius=4.5, length=38.0, depth=5, tissue=tissue, over=over_lung)

    # Oesophagus.
    e = p["esophagus"]
    canvas.paint(shapes.cylinder_z(e["x"], e["y"], e["r"], z_lo - 5, z_hi + 5, ry=e["r"] * 0.75),
                 [e["x"] - e["r"], e["y"] - e["r"], z_lo - 5], [e["x"] + e["r"], e["y"] + e["r"], z_hi + 5],
                 L["esophagus"], "esophagus")

    _paint_spine(canvas, p, z_lo, z_hi)
    _paint_ribs(canvas, p, body)

    # Great veins and arch branches outside the pericardium.
    pts = p["points"]
    _tube(canvas, rng, pts["ivc"], 12.0, "inferior_vena_cava", "blood_ivc", 1.0)
    inj = "blood_bcv_injected"
    _tube(canvas, rng, pts["right_bcv"], 7.0, "brachiocephalic_veins", inj if p["injection_side"] == "right" else "blood_vein", 1.0)
    _tube(canvas, rng, pts["left_bcv"], 6.0, "brachiocephalic_veins", inj if p["injection_side"] == "left" else "blood_vein", 1.0)
    for name, r in (("brachiocephalic", 6.5), ("right_subclavian", 4.5), ("right_carotid", 4.0),
                    ("left_carotid", 4.0), ("left_subclavian", 4.5)):
        _tube(canvas, rng, pts[name], r, "supra_aortic_arteries", "blood_left", 1.0)

    info.update(_paint_heart(canvas, p, rng))
    _restore_chest_wall(canvas, body, info["heart_box"])
    _paint_sternum(canvas, p, body)
    _paint_imas(canvas, p, body, rng, info)
    _paint_upper_abdomen(canvas, p, left_top, right_top, info)
    _paint_table(canvas, p, z_lo, z_hi)
    return info


# -- upper abdomen -----------------------------------------------------------------------------------
#: Lateral positions (x, LPS mm) of the tops of the left and right diaphragm domes.
LEFT_DOME_X, RIGHT_DOME_X = 50.0, -55.0


def _dome_z(top: float, x_top: float, X, Y):
    """Height z (mm, LPS) of a diaphragm dome over (X, Y) mm: a paraboloid peaking at ``top`` over x = ``x_top``."""
    return top - 70 * ((X - x_top) / 100) ** 2 - 40 * (Y / 100) ** 2


# Real chest CTs reach 6-14 cm below the diaphragm: a liver with enhanced veins, the stomach with gas,
# the spleen, the colon's splenic flexure, all in visceral fat. Without them a model meets its first
# soft-tissue organ under the diaphragm on a real scan and may take it for heart.
def _liver_sdf(p, X, Y, Z, abdomen, below, left_top, right_top):
    """Signed distance (mm, approximate) of the liver: under the diaphragm (4 mm muscle between),
    the right lobe reaching ``liver_depth`` below the right dome, the left lobe thinning towards a
    tip ``liver_tip_x`` left of the midline, anteriorly."""
    a, b = p["body"]["a"], p["body"]["b"]
    q = p["abdomen"]
    tip = np.float32(q["liver_tip_x"])
    # left border: at the tip anteriorly, back to just right of the spine posteriorly
    t_ap = np.clip((Y + np.float32(b)) / np.float32(1.6 * b), 0, 1)
    left_border = X - (tip - (tip + np.float32(15)) * t_ap)
    # inferior border: deep on the right, shallow at the left lobe
    t_lr = np.clip((X + np.float32(0.8 * a)) / (tip + np.float32(0.8 * a)), 0, 1)
    z_inf = (np.float32(right_top - q["liver_depth"]) * (1 - t_lr)
             + np.float32(left_top - q["liver_left_depth"]) * t_lr)
    inferior = np.float32(z_inf) - Z
    return np.maximum(np.maximum(np.maximum(abdomen, below + np.float32(4.0)), left_border), inferior)


def _paint_upper_abdomen(canvas, p, left_top: float, right_top: float, info: dict) -> None:
    q = p["abdomen"]
    a, b = p["body"]["a"], p["body"]["b"]
    in_abdomen = tissue_lookup(["upper_abdomen"])
    # Crura: a muscle sleeve around the aorta from the hiatus down (only over the abdomen's fat and muscle, so
    # neither the aorta nor the spine beside it changes).
    course = p["aorta_course"]
    curve, radii = np.asarray(info["aorta_curve"]), np.asarray(info["aorta_radii"])
    top = left_top - 15.0
    along = (curve[:, 2] <= top) & (curve[:, 2] >= top - course["crus_length_mm"])
    if along.sum() >= 2:
        canvas.paint_tube(curve[along], radii[along] + course["crus_mm"], L["upper_abdomen"], "muscle",
                          only_over=in_abdomen)
    in_liver = tissue_lookup(["liver"])
    # Hepatic veins: from the IVC just below the right dome into the liver (enhanced with the IVC).
    ivc_top = np.array([p["points"]["ivc"][1][0], p["points"]["ivc"][1][1], right_top - 12.0])
    for angle in q["hepatic_vein_angles"]:
        direction = _unit([np.sin(angle), np.cos(angle) * 0.8, -0.35])
        path = np.array([ivc_top, ivc_top + 45 * direction, ivc_top + 95 * direction + [0, 0, -15]])
        curve = shapes.smooth_curve(path, 3.0)
        radii = np.interp(np.linspace(0, 1, len(curve)), [0, 1], [6.0, 2.5])
        canvas.paint_tube(curve, radii, L["liver"], "blood_ivc", only_over=in_liver)
    # Stomach under the left dome: wall, contents, and gas anteriorly (the patient lies supine).
    st = q["stomach"]
    centre = np.array([st["x"], st["y"], left_top - st["drop"]])
    semi = np.asarray(st["semi"], float)
    lo, hi = centre - semi - 2, centre + semi + 2
    below_dome = lambda X, Y, Z: Z - _dome_z(left_top - 6.0, LEFT_DOME_X, X, Y)  # 6 mm under the left dome
    outer = shapes.intersect(shapes.ellipsoid(centre, np.eye(3), semi), below_dome)
    canvas.paint(outer, lo, hi, L["stomach"], "muscle", only_over=in_abdomen)
    over_stomach = tissue_lookup(["stomach"])
    lumen = shapes.offset(outer, -st["wall"])
    canvas.paint(lumen, lo, hi, L["stomach"], "stomach_content", only_over=over_stomach)
    if st["gas_mm"] > 0:
        level = centre[1] - semi[1] + st["gas_mm"]  # air-fluid level: a coronal plane
        gas = shapes.intersect(lumen, shapes.halfspace([0, level, 0], [0, 1, 0]))
        canvas.paint(gas, lo, hi, L["stomach"], "airway_air", only_over=over_stomach)
    # Spleen: posterolateral on the left, along the ribs.
    sp = q["spleen"]
    c = np.array([0.62 * a, 0.45 * b, left_top - sp["drop"]])
    ang = sp["angle"]
    axes = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    lo, hi = shapes.ellipsoid_bounds(c, axes, sp["semi"])
    canvas.paint(shapes.intersect(shapes.ellipsoid(c, axes, sp["semi"]), below_dome), lo, hi, L["spleen"], "liver",
                 only_over=in_abdomen)
    # Colon (splenic flexure and transverse colon): a gas-filled tube in front of the stomach.
    co = q["colon"]
    z_c = left_top - co["drop"]
    path = np.array([[co["x_left"], 0.1 * b, z_c - 30], [co["x_left"] + 5, co["y"] * b * 0.6, z_c],
                     [0.5 * (co["x_left"] + co["x_right"]), co["y"] * b, z_c - 10], [co["x_right"], co["y"] * b, z_c - 25]])
    curve = shapes.smooth_curve(path, 3.0)
    radius = np.full(len(curve), co["radius"])
    canvas.paint_tube(curve, radius, L["bowel"], "muscle", only_over=in_abdomen)
    canvas.paint_tube(curve, radius - 2.5, L["bowel"], "stomach_content", only_over=tissue_lookup(["bowel"]))
    canvas.paint_tube(curve, (radius - 2.5) * co["gas"], L["bowel"], "airway_air", only_over=tissue_lookup(["bowel"]))


def _paint_table(canvas, p, z_lo, z_hi) -> None:
    """The scanner table under the patient's back: a shallow curved slab (outside the body)."""
    t = p["abdomen"]["table"]
    a, b = p["body"]["a"], p["body"]["b"]
    y0 = b + t["gap"]  # top surface at the midline, just behind the back
    half_w = a + 40.0
    half_t = np.float32(t["thickness"] / 2)

    def sdf(X, Y, Z):
        surface = np.float32(y0) - np.float32(t["sag"]) * (X / np.float32(half_w)) ** 2  # curved up at the sides
        return np.maximum(np.abs(Y - surface - half_t) - half_t, np.abs(X) - np.float32(half_w))

    # in the scanner's frame: the table stays flat where the body bends forward off it
    canvas.paint(sdf, [-half_w, y0 - t["sag"] - 2, z_lo], [half_w, y0 + t["thickness"] + 2, z_hi], L["table"], "table",
                 only_over=tissue_lookup(["background"]), scanner_frame=True)


def _tube(canvas, rng, control, radius, label, tissue, tortuosity, step=3.0, **kw):
    curve = _tortuous(rng, control, tortuosity, step)
    radii = radius if np.ndim(radius) == 0 else _resample_radii(curve, control, radius)
    canvas.paint_tube(curve, radii, L[label], tissue, **kw)
    return curve


def _grow_tree(canvas, rng, start, direction, radius, length, depth, tissue, over):
    end = start + length * direction
    canvas.paint_tube(np.array([start, end]), np.array([radius, radius * 0.9]), L["pulmonary_vessels"], tissue,
                      only_over=over)
    if depth <= 1:
        return
    for _ in range(2):
        perturb = rng.normal(size=3)
        perturb -= (perturb @ direction) * direction
        new_dir = _unit(direction + rng.uniform(0.3, 0.7) * _unit(perturb))
        _grow_tree(canvas, rng, end, new_dir, radius * 0.7, length * 0.78, depth - 1, tissue, over)


def _paint_spine(canvas, p, z_lo, z_hi):
    v = p["vertebra"]
    y_s = p["y_spine"]
    r = v["radius"]
    period = v["height"] + v["disc"]
    canal_y = y_s + r + 9
    # Posterior arch and processes as bone, the canal inside.
    arch = shapes.cylinder_z(0, canal_y, 14, z_lo - 10, z_hi + 10, ry=12)
    canvas.paint(arch, [-15, canal_y - 13, z_lo - 10], [15, canal_y + 13, z_hi + 10], L["vertebra"], "bone_marrow")
    z = z_hi + 10 - ((z_hi + 10) % period)
    while z > z_lo - period:
        zc = z - v["height"] / 2
        for a, b, rr in (([0, canal_y + 8, zc], [0, canal_y + 32, zc - 18], 4.5),
                         ([-6, canal_y - 4, zc], [-30, canal_y + 2, zc], 4.5), ([6, canal_y - 4, zc], [30, canal_y + 2, zc], 4.5)):
            canvas.paint(shapes.capsule(a, b, rr, rr), np.minimum(a, b) - rr, np.maximum(a, b) + rr, L["vertebra"], "bone_cortex")
            canvas.paint(shapes.capsule(a, b, rr - 1.5, rr - 1.5), np.minimum(a, b) - rr, np.maximum(a, b) + rr, L["vertebra"], "bone_marrow")
        lo, hi = [-r, y_s - r, z - v["height"]], [r, y_s + r, z]
        canvas.paint(shapes.cylinder_z(0, y_s, r, z - v["height"], z, ry=r * 0.85), lo, hi, L["vertebra"], "bone_cortex")
        canvas.paint(shapes.cylinder_z(0, y_s, r - 1.5, z - v["height"] + 1.5, z - 1.5, ry=r * 0.85 - 1.5), lo, hi,
                     L["vertebra"], "bone_marrow")
        canvas.paint(shapes.cylinder_z(0, y_s, r - 0.5, z, z + v["disc"], ry=r * 0.85 - 0.5),
                     [-r, y_s - r, z], [r, y_s + r, z + v["disc"]], L["intervertebral_disc"], "disc")
        z -= period
    canvas.paint(shapes.cylinder_z(0, canal_y, 7.5, z_lo - 10, z_hi + 10, ry=6.5),
                 [-8, canal_y - 8, z_lo - 10], [8, canal_y + 8, z_hi + 10], L["spinal_canal"], "csf")


#: What beats with the heart (blurred by cardiac motion; never painted into the chest wall).
BEATING_STRUCTURES = ("pericardial_fat", "pericardium", "epicardial_fat", "pulmonary_veins", "left_atrium",
                      "left_ventricle_cavity", "left_ventricle_myocardium", "aorta", "coronary_sinus",
                      "superior_vena_cava", "right_atrium", "right_ventricle_cavity", "pulmonary_artery",
                      "right_ventricle_myocardium", "left_main_coronary_artery", "left_anterior_descending_artery",
                      "left_circumflex_artery", "right_coronary_artery", "coronary_calcium", "aortic_valve_calcium",
                      "mitral_annulus_calcium")


def _restore_chest_wall(canvas, body: Body, heart_box) -> None:
    """Paint the chest wall (skin, subcutaneous fat, muscle) and the air outside back over any heart
    that reached into them.

    A large heart in a shallow chest went through the chest wall on 4 of 10 seeds in generator
    0.2.1 (seed 7: pericardial fat out to the skin). The wall is rigid: the heart lies flat against
    it, as on real scans."""
    lo, hi = np.asarray(heart_box[0], float) - 5, np.asarray(heart_box[1], float) + 5
    sl = canvas.box(lo, hi)
    X, Y, Z = canvas.coordinates(sl, False)
    heart = tissue_lookup(BEATING_STRUCTURES)
    d_body = body.outer_sdf(X, Y, Z)
    canvas.paint_distance(-d_body, sl, L["background"], "air", only_over=heart)
    # each layer is the band between its outer surface and the next one's, as paint_anatomy paints them
    for (key, tissue, outer), (_, _, inner) in itertools.pairwise(body.wall_layers(X, Y, d_body)):
        canvas.paint_distance(np.maximum(outer, -inner), sl, L[key], tissue, only_over=heart)


#: Radius of the ribs' cortex and of the costal cartilages (mm).
CARTILAGE_RADIUS_MM = 4.5


def _paint_intercostal_muscles(canvas, p, body: Body) -> None:
    """The internal intercostal muscles between the costal cartilages beside the sternum: a layer
    ``chest_wall.intercostal_muscle_mm`` thick ending at the cartilages' back surface, over the front of the
    chest from the sternal border to where the pectoral muscle reaches its full thickness (beyond, the
    chest wall's muscle layer fills the spaces), over the sternum's height (:data:`INTERCOSTAL_MUSCLE_MM`).
    Painted before the cartilages (they lie in it) and over fat and lung only."""
    thickness = p.get("chest_wall", {}).get("intercostal_muscle_mm")
    if thickness is None:  # parameters of generators up to 0.2.9
        return
    st = p["sternum"]
    back = body.rib_centre + CARTILAGE_RADIUS_MM
    front = back - thickness
    border = st["half_width"] - 1.0  # the sternum, painted later, covers its own width
    x_ext = st["half_width"] + body.pectoral_reach  # drawn since 0.2.4, so present with the thickness
    z_range = (st["xiphoid_z"], st["top_z"])

    def sdf(X, Y, Z):
        d = np.maximum(body.depth_sdf(X, Y, Z, front), -body.depth_sdf(X, Y, Z, back))
        d = np.maximum(d, np.maximum(np.float32(border) - np.abs(X), np.abs(X) - np.float32(x_ext)))
        return np.maximum(d, np.maximum(np.float32(z_range[0]) - Z, Z - np.float32(z_range[1])))

    canvas.paint(sdf, [-x_ext, -body.b - 5.0, z_range[0]], [x_ext, 0.0, z_range[1]], L["muscle"], "muscle",
                 only_over=tissue_lookup(("mediastinal_fat", "subcutaneous_fat", "lung")))


def _paint_ribs(canvas, p, body: Body):
    """Ribs and, for the upper seven, costal cartilages running to the sternal border."""
    _paint_intercostal_muscles(canvas, p, body)
    st = p["sternum"]
    ribs = p["ribs"]
    y_spine = p["y_spine"]
    w = st["half_width"]
    x_lo, x_hi = float(canvas.x[0]), float(canvas.x[-1])
    z_lo, z_hi = float(canvas.z[0]), float(canvas.z[-1])
    for n in range(12):
        z0 = ribs["first_z"] - n * ribs["spacing"]
        if z0 - ribs["drop"] - 20 > z_hi or z0 + 20 < z_lo:
            continue
        end_alpha = 0.80 if n < 7 else 0.80 - 0.06 * (n - 6)
        for side in (1, -1):
            pts = [[side * 12.0, y_spine + 6, z0 + 4]]
            for alpha in np.linspace(0.12, end_alpha, 14):
                zz = z0 - ribs["drop"] * alpha ** 1.4
                pt = body.ray_point(body.rib_centre, 0.6, side * np.pi * alpha, zz)
                pts.append(pt)
            curve = shapes.smooth_curve(pts, 7.0)
            if curve[:, 0].max() < x_lo - 10 or curve[:, 0].min() > x_hi + 10:
                continue
            canvas.paint_tube(curve, CARTILAGE_RADIUS_MM, L["rib"], "bone_cortex")
            canvas.paint_tube(curve, 2.8, L["rib"], "bone_marrow")
            if n < 7:  # costal cartilage from the rib end to the sternal border
                zc = st["top_z"] - 18 - n * (st["top_z"] - st["xiphoid_z"] - 20) / 7.0
                end = curve[-1]
                target = body.point_on(body.rib_centre, 0.6, side * (w - 1), zc)
                mid = body.point_on(body.rib_centre, 0.6, (end[0] + target[0]) / 2, (end[2] + zc) / 2)
                cart = shapes.smooth_curve([end, mid, target], 5.0)
                canvas.paint_tube(cart, CARTILAGE_RADIUS_MM, L["costal_cartilage"], "cartilage")


#: The manubrium: its height (mm, S-I) and how much wider than the sternal body it is on each side (mm).
MANUBRIUM_HEIGHT_MM, MANUBRIUM_EXTRA_HALF_WIDTH_MM = 35.0, 8.0
#: How far (mm, S-I) below the manubrium an IMA already keeps the manubrium's lateral distance: its curve
#: is smoothed between control points about 20 mm apart, and must not cut the bone's lower corner.
MANUBRIUM_CLEARANCE_MM = 10.0


def _paint_sternum(canvas, p, body: Body):
    """Sternum: manubrium, body, xiphoid. Painted after the heart: in thin patients the right ventricle
    reaches the sternum, and the bone, not the heart, keeps its shape there."""
    st = p["sternum"]
    w = st["half_width"]
    # Its posterior surface lies level with or just behind the backs of the costal cartilages (0-4 mm),
    # so the IMAs behind the cartilages run at the sternum's depth with lung right behind them, as on
    # real scans.
    t = st["thickness"]
    behind = p.get("chest_wall", {}).get("sternum_behind_cartilage", 0.0)
    y_front = body.point_on(body.rib_centre + CARTILAGE_RADIUS_MM + behind, 0, 0, 0)[1] - t
    top, extra = st["top_z"] - MANUBRIUM_HEIGHT_MM, MANUBRIUM_EXTRA_HALF_WIDTH_MM
    parts = [(top, st["top_z"], w + extra), (st["xiphoid_z"] + 25, top, w),
             (st["xiphoid_z"], st["xiphoid_z"] + 25, w * 0.45)]
    for z0, z1, half in parts:
        c = [0, y_front + t / 2, (z0 + z1) / 2]
        hs = [half, t / 2, (z1 - z0) / 2]
        lo, hi = np.array(c) - hs, np.array(c) + hs
        canvas.paint(shapes.box(c, hs, 2.0), lo, hi, L["sternum"], "bone_cortex")
        canvas.paint(shapes.box(c, np.array(hs) - 1.5, 1.0), lo, hi, L["sternum"], "bone_marrow")
    p.setdefault("_derived", {})["sternum_front_y"] = y_front


def _paint_heart(canvas, p, rng) -> dict:
    H, e_long, e_rv, e_sup = lv_frame(p)
    lv = p["lv"]
    s = p["heart_scale"]
    R_h = np.asarray(p["heart_rotation"])
    pts = p["points"]
    wall = lv["wall"]
    a_cav, r_cav = lv["L_cav"], lv["r_cav"]
    a_out, r_out = a_cav + 0.8 * wall, r_cav + wall
    frame = np.stack([e_long, e_rv, e_sup], axis=1)
    base_cut = lambda cut: shapes.halfspace(H - cut * e_long, -e_long)  # keep a >= -cut
    lv_outer = shapes.intersect(shapes.ellipsoid(H, frame, [a_out, r_out, r_out]), base_cut(0.08 * a_cav))
    lv_cavity = shapes.intersect(shapes.ellipsoid(H, frame, [a_cav, r_cav, r_cav]), base_cut(0.08 * a_cav))
    # Right ventricle: crescent on the right-anterior side of the LV.
    rv = p["rv"]
    rv_half = 14.0 * rv["scale"]
    rv_centre = H + 0.32 * a_cav * e_long + (r_out + rv_half - 11) * e_rv
    rv_frame = frame
    rv_axes = [0.78 * a_out, rv_half, 35.0 * rv["scale"] ** 0.5 * s]
    rv_cavity = shapes.intersect(shapes.ellipsoid(rv_centre, rv_frame, rv_axes), base_cut(8.0))
    la_c, ra_c = np.asarray(pts["la_centre"]), np.asarray(pts["ra_centre"])
    la_ax = np.asarray([40.0, 25.0, 30.0]) * p["la"]["scale"]
    ra_ax = np.asarray([24.0, 26.0, 32.0]) * p["ra"]["scale"]
    la = shapes.ellipsoid(la_c, R_h, la_ax)
    ra = shapes.ellipsoid(ra_c, R_h, ra_ax)
    # Envelope (smooth union) for epicardial fat, pericardium and pericardial fat.
    aorta0 = np.asarray(pts["aorta"][0])
    pa0 = np.asarray(pts["pa_trunk"][0])
    root = shapes.capsule(aorta0, np.asarray(pts["aorta"][2]), p["aorta_radius"], p["aorta_radius"])
    pa_trunk = shapes.capsule(pa0, np.asarray(pts["pa_trunk"][1]), p["pa_radius"], p["pa_radius"])
    rv_outer = shapes.offset(rv_cavity, rv["wall"])
    envelope = shapes.smooth_union([lv_outer, rv_outer, la, ra, root, pa_trunk], 8.0)
    boxes = [shapes.ellipsoid_bounds(H, frame, [a_out, r_out, r_out], min_first=-0.1),
             shapes.ellipsoid_bounds(rv_centre, frame, np.asarray(rv_axes) + rv["wall"]),
             shapes.ellipsoid_bounds(la_c, R_h, la_ax), shapes.ellipsoid_bounds(ra_c, R_h, ra_ax)]
    for a_pt, b_pt, r in ((aorta0, np.asarray(pts["aorta"][2]), p["aorta_radius"]), (pa0, np.asarray(pts["pa_trunk"][1]), p["pa_radius"])):
        boxes.append((np.minimum(a_pt, b_pt) - r, np.maximum(a_pt, b_pt) + r))
    grow = 8.0  # smooth-union bulge in the grooves
    lo = np.min([b[0] for b in boxes], axis=0) - grow
    hi = np.max([b[1] for b in boxes], axis=0) + grow
    epi = p["epicardial_fat_mm"]
    canvas.paint_layers(envelope, lo, hi, [(epi + 2 + p["pericardial_fat_mm"], L["pericardial_fat"], "fat"),
                                           (epi + 2.0, L["pericardium"], "pericardium"),
                                           (epi, L["epicardial_fat"], "fat")], deform=True, coarse=2)
    dk = dict(deform=True)
    # Atria (with appendages) and pulmonary veins / SVC / coronary sinus.
    for v in pts["pv"].values():
        curve = _tortuous(rng, v, p["tortuosity_mm"] * 0.5)
        canvas.paint_tube(curve, p["pv_radius"], L["pulmonary_veins"], "blood_left", **dk)
    canvas.paint(la, *shapes.ellipsoid_bounds(la_c, R_h, la_ax), L["left_atrium"], "blood_left", **dk)
    curve = _tortuous(rng, pts["laa"], 1.0)
    canvas.paint_tube(curve, _resample_radii(curve, pts["laa"], [9 * s, 7 * s, 4.5 * s]), L["left_atrium"], "blood_left", **dk)
    svc_curve = _tortuous(rng, pts["svc"], 1.0)
    canvas.paint_tube(svc_curve, p["svc_radius"], L["superior_vena_cava"], "blood_svc", **dk)
    # The right atrium's blood: with contrast, swirls of opacified SVC blood through IVC blood.
    # Twelve draws as up to 0.2.10 seed the swirls, so that the anatomy drawn after them stays the same.
    swirl_seed = np.concatenate([rng.normal(size=9), rng.uniform(0, 6.3, 3)])
    ra_blood = right_atrial_blood(np.random.default_rng(np.frombuffer(swirl_seed.tobytes(), np.uint32)),
                                  canvas.intensity("blood_ivc", L["inferior_vena_cava"]),
                                  canvas.intensity("blood_svc", L["superior_vena_cava"]))
    canvas.paint(ra, *shapes.ellipsoid_bounds(ra_c, R_h, ra_ax), L["right_atrium"], "blood_ra", **ra_blood, **dk)
    curve = _tortuous(rng, pts["raa"], 1.0)
    canvas.paint_tube(curve, _resample_radii(curve, pts["raa"], [10 * s, 7 * s, 4.5 * s]), L["right_atrium"],
                      "blood_ra", **ra_blood, **dk)
    # Ventricles: RV wall, RV cavity, LV myocardium, LV cavity, papillary muscles.
    rv_box = shapes.ellipsoid_bounds(rv_centre, rv_frame, np.asarray(rv_axes) + rv["wall"])
    canvas.paint(rv_outer, *rv_box, L["right_ventricle_myocardium"], "myocardium", **dk)
    canvas.paint(rv_cavity, *rv_box, L["right_ventricle_cavity"], "blood_rv", **dk)
    # RV outflow tract to the pulmonary valve.
    rvot = shapes.smooth_curve([rv_centre + 0.2 * rv_axes[2] * e_sup, pa0], 3.0)
    canvas.paint_tube(rvot, np.linspace(14.0 * s, p["pa_radius"], len(rvot)), L["right_ventricle_myocardium"], "myocardium", **dk)
    canvas.paint_tube(rvot, np.linspace(14.0 * s - rv["wall"], p["pa_radius"] - 1, len(rvot)), L["right_ventricle_cavity"], "blood_rv", **dk)
    lv_box = shapes.ellipsoid_bounds(H, frame, [a_out, r_out, r_out], min_first=-0.1)
    canvas.paint(lv_outer, *lv_box, L["left_ventricle_myocardium"], "myocardium", **dk)
    canvas.paint(lv_cavity, *lv_box, L["left_ventricle_cavity"], "blood_left", **dk)
    for frac, ang in lv["papillary"]:
        ang_r = np.deg2rad(ang)
        direction = np.cos(ang_r) * e_rv + np.sin(ang_r) * e_sup
        a = frac * a_cav
        radial = r_cav * np.sqrt(max(1 - (a / a_cav) ** 2, 0.05)) - 5.0
        c = H + a * e_long + radial * direction
        pf = shapes.frame_from_axis(e_long, direction)
        axes = [16.0 * s, 6.0 * s, 5.5 * s]
        canvas.paint(shapes.ellipsoid(c, pf, axes), *shapes.ellipsoid_bounds(c, pf, axes), L["left_ventricle_myocardium"], "myocardium", **dk)
    # Coronary sinus in the posterior AV groove, draining into the RA.
    cs_r = p["coronary_sinus"]["radius"]
    cs = [lv_surface_point(p, 0.0, a, cs_r + 1.0, base_mm=-7) for a in np.linspace(190, 290, 5)]
    cs.append(ra_c + 0.6 * ra_ax[0] * _unit(cs[-1] - ra_c))
    curve = shapes.smooth_curve(cs, 3.0)
    canvas.paint_tube(curve, np.linspace(cs_r * 0.7, cs_r, len(curve)), L["coronary_sinus"], "blood_cs", **dk)

    # Great arteries: pulmonary artery, then the aorta (root over the chambers).
    pa_curve = _tortuous(rng, pts["pa_trunk"], 1.0)
    canvas.paint_tube(pa_curve, p["pa_radius"], L["pulmonary_artery"], "blood_pa", **dk)
    for branch in ("lpa", "rpa"):
        curve = _tortuous(rng, pts[branch], 1.5)
        canvas.paint_tube(curve, np.linspace(p["pa_radius"] * 0.75, p["pa_radius"] * 0.6, len(curve)),
                          L["pulmonary_artery"], "blood_pa", **dk)
    r_ao = p["aorta_radius"]
    ao_ctrl = pts["aorta"]
    fractions = list(AORTA_RADIUS_FRACTIONS)
    fractions[8:] = p["aorta_course"].get("radius_fractions", fractions[8:])  # per patient from 0.2.7
    ao_radii = [r_ao * f for f in fractions]
    ao_curve = _tortuous(rng, ao_ctrl, p["tortuosity_mm"] * 0.6, step=4.0)
    # Below the diaphragm the aorta runs straight down in front of the spine: the spline, arriving from the
    # chest's lateral course, would swing 5-10 mm forward of it between the last two points.
    z_hiatus = ao_ctrl[8][2]
    first = len(ao_curve) - int(np.argmax(ao_curve[::-1, 2] >= z_hiatus))  # the curve's tail below it
    if first < len(ao_curve):
        start, end = ao_curve[first - 1], np.asarray(ao_ctrl[9], float)
        t = (start[2] - ao_curve[first:, 2]) / max(start[2] - end[2], 1e-6)
        ao_curve[first:, :2] = start[:2] + t[:, None] * (end[:2] - start[:2])
    ao_r = _resample_radii(ao_curve, ao_ctrl, ao_radii)
    canvas.paint_tube(ao_curve, ao_r, L["aorta"], "blood_left", **dk)
    # Periaortic region: one vessel diameter from the wall.
    canvas.flag_tube_shell(ao_curve, ao_r, bit=1, diameters=1.0, deform=True)

    # Coronary arteries in the epicardial fat, each in its own fat sleeve.
    paths = coronary_paths(p)
    label_of = {"diagonal": "left_anterior_descending_artery", "obtuse_marginal": "left_circumflex_artery"}
    curves = {}
    for name, (ctrl, radii) in paths.items():
        curve = _tortuous(rng, ctrl, min(p["tortuosity_mm"], 1.5) * 0.5, step=2.0)
        r = _resample_radii(curve, ctrl, radii)
        curves[name] = (curve, r)
        canvas.paint_tube(curve, r + 1.2, L["epicardial_fat"], "fat", only_over=_NOT_CAVITY, **dk)
    for name, (curve, r) in curves.items():
        canvas.paint_tube(curve, r, L[label_of.get(name, name)], "blood_left", **dk)

    # Calcified plaques.
    _paint_plaques(canvas, p, rng, curves, ao_curve, ao_r, H, e_long, e_rv, e_sup, r_cav)
    return dict(svc_curve=svc_curve, heart_box=(lo, hi), aorta_curve=ao_curve, aorta_radii=ao_r,
                coronary_curves={k: v[0] for k, v in curves.items()})


_NOT_CAVITY = np.ones(256, dtype=np.float32)
for _name in ("left_ventricle_cavity", "right_ventricle_cavity", "left_atrium", "right_atrium", "aorta",
              "pulmonary_artery", "superior_vena_cava", "coronary_sinus", "pulmonary_veins"):
    _NOT_CAVITY[L[_name]] = 0.0


def _paint_plaques(canvas, p, rng, curves, ao_curve, ao_r, H, e_long, e_rv, e_sup, r_cav):
    def blob(centre, direction, volume, peak, label):
        # ellipsoid 2:1:1 elongated along ``direction``; volume = 4/3 pi a b c
        b = (3 * volume / (4 * np.pi * 2)) ** (1 / 3)
        frame = shapes.frame_from_axis(direction, [0.3, 0.5, 0.8] if abs(_unit(direction)[2]) < 0.9 else [1, 0, 0])
        axes = [2 * b, b, b]
        canvas.paint(shapes.ellipsoid(centre, frame, axes), centre - 2 * b - 1, centre + 2 * b + 1, L[label], "calcium",
                     value=peak, deform=True)

    vessel_curve = {"lad": "left_anterior_descending_artery", "lcx": "left_circumflex_artery",
                    "rca": "right_coronary_artery", "lm": "left_main_coronary_artery"}
    for plq in p["plaques"]["coronary"]:
        curve, radii = curves[vessel_curve[plq["vessel"]]]
        i = int(plq["t"] * (len(curve) - 2))
        tangent = _unit(curve[i + 1] - curve[i])
        normal = np.cross(tangent, [0.0, 0.0, 1.0])
        normal = _unit(np.cos(plq["angle"]) * _unit(normal) + np.sin(plq["angle"]) * np.cross(tangent, _unit(normal)))
        centre = curve[i] + 0.6 * radii[i] * normal
        blob(centre, tangent, plq["volume_mm3"], plq["peak_hu"], "coronary_calcium")
    for plq in p["plaques"]["aortic_wall"]:
        i = int(plq["t"] * (len(ao_curve) - 2))
        tangent = _unit(ao_curve[i + 1] - ao_curve[i])
        normal = _unit(np.cross(tangent, [1.0, 0.0, 0.0]))
        normal = _unit(np.cos(plq["angle"]) * normal + np.sin(plq["angle"]) * np.cross(tangent, normal))
        centre = ao_curve[i] + (ao_r[i] - 0.8) * normal
        blob(centre, tangent, plq["volume_mm3"], plq["peak_hu"], "aortic_wall_calcium")
    ao0 = np.asarray(p["points"]["aorta"][0])
    ao_dir = _unit(np.asarray(p["points"]["aorta"][1]) - ao0)
    for plq in p["plaques"]["aortic_valve"]:
        ref = _unit(np.cross(ao_dir, [0, 0, 1.0]))
        direction = np.cos(plq["angle"]) * ref + np.sin(plq["angle"]) * np.cross(ao_dir, ref)
        centre = ao0 + 0.5 * p["aorta_radius"] * direction
        blob(centre, np.cross(ao_dir, direction), plq["volume_mm3"], plq["peak_hu"], "aortic_valve_calcium")
    for plq in p["plaques"]["mitral_annulus"]:
        ang = np.deg2rad(plq["angle"])
        direction = np.cos(ang) * e_rv + np.sin(ang) * e_sup
        centre = H - 2 * e_long + (r_cav + 1.0) * direction
        blob(centre, np.cross(e_long, direction), plq["volume_mm3"], plq["peak_hu"], "mitral_annulus_calcium")


#: Over how many mm the IMA's fat plate thins out at its lateral end.
IMA_FAT_PLATE_TAPER_MM = 8.0


def _paint_ima_fat_plate(canvas, body: Body, sign: float, x_near: float, x_full: float,
                         back_inset: float, z_range, over) -> None:
    """The extrapleural fat an IMA runs in: a plate on the inside of the anterior chest wall, from the
    chest wall (the thoracic cavity's surface) to ``back_inset`` mm inside the skin (the back of the
    artery's sleeve), from ``x_near`` to ``x_full`` mm from the midline on the side ``sign`` (+1 left),
    thinning out over :data:`IMA_FAT_PLATE_TAPER_MM` beyond, over ``z_range`` (mm); painted over what
    ``over`` allows (the lung, the heart, the liver), so they lie behind the artery, not beside it."""
    front_inset = body.cavity - 1.0
    x_far = x_full + IMA_FAT_PLATE_TAPER_MM

    def sdf(X, Y, Z):
        lateral = np.float32(sign) * X
        taper = np.clip((lateral - np.float32(x_full)) / np.float32(IMA_FAT_PLATE_TAPER_MM), 0, 1)
        back = np.float32(back_inset) - np.float32(back_inset - front_inset) * taper
        d = np.maximum(body.depth_sdf(X, Y, Z, front_inset, 1.0), -body.depth_sdf(X, Y, Z, back, 1.0))
        d = np.maximum(d, np.maximum(np.float32(x_near) - lateral, lateral - np.float32(x_far)))
        return np.maximum(d, np.maximum(np.float32(z_range[0]) - Z, Z - np.float32(z_range[1])))

    x_lo, x_hi = sorted((sign * x_near, sign * x_far))
    canvas.paint(sdf, [x_lo, -body.b - 5.0, z_range[0]], [x_hi, 0.0, z_range[1]], L["mediastinal_fat"], "fat",
                 only_over=over)


def _paint_imas(canvas, p, body: Body, rng, info):
    """Internal mammary arteries and veins: from the subclavian arteries down just behind the costal
    cartilages (level with the sternum's posterior surface), 6-18 mm lateral to the sternal border,
    past the xiphoid. They run unbroken in front of the heart and the liver: where either reaches the
    chest wall, the vessels' fat (sleeve and plate) and the vessels are painted over it, so the organ
    lies flat behind them. (Up to generator 0.2.8 they were painted over lung and soft tissue only: the
    left IMA stopped for 30-80 mm where the right ventricle touched the wall, in 8 of 12 seeds checked,
    and for 12-24 mm at the liver's front.)"""
    st = p["sternum"]
    behind = ("lung", "liver") + BEATING_STRUCTURES  # what the vessels and their fat push back
    over = tissue_lookup(SOFT + ("internal_mammary_veins", "brachiocephalic_veins") + behind)
    pushed_back = tissue_lookup(behind)  # the vessels' fat takes the lung, the heart or the liver, nothing else
    inset = body.rib_centre + CARTILAGE_RADIUS_MM + 1.0  # 1 mm of fat behind the rib/cartilage layer
    z_top = p["arch_top_z"] + 25
    z_end = st["xiphoid_z"] - 25
    info["ima_curves"] = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        q = p["ima"][side]
        x_ima = sign * (st["half_width"] + q["lateral"])
        sub = np.asarray(p["points"]["left_subclavian" if side == "left" else "right_subclavian"])
        origin = sub[1] + 0.3 * (sub[2] - sub[1]) + np.array([0, -2, -3])
        zs = np.linspace(z_top, z_end, 12)
        wall_pts = []
        for n, z in enumerate(zs):
            wobble = 1.5 * np.sin(q["phase"] + n * 1.3)
            # beside the manubrium (MANUBRIUM_EXTRA_HALF_WIDTH_MM wider than the sternal body) the artery
            # keeps its distance from the bone's border: drawn at the body's, it ran into the manubrium
            # and stopped for 15-35 mm (generator 0.2.8)
            beside_manubrium = z >= st["top_z"] - MANUBRIUM_HEIGHT_MM - MANUBRIUM_CLEARANCE_MM
            x = x_ima + sign * MANUBRIUM_EXTRA_HALF_WIDTH_MM * beside_manubrium
            pt = body.point_on(inset + q["radius"], 1.0, x + wobble, z)
            wall_pts.append(pt)
        ctrl = np.vstack([origin, origin + [0, -12, -15], *wall_pts])
        curve = shapes.smooth_curve(ctrl, 3.0)
        label = L[f"{side}_internal_mammary_artery"]
        vein = curve + np.array([q["vein_side"] * (q["radius"] + q["vein_radius"] + 1.5), 0.5, 0])
        wall = p.get("chest_wall", {})
        sleeve = wall.get("ima_fat_sleeve_mm", {}).get(side, max(IMA_FAT_SLEEVE_MM))
        with_vein = wall.get("ima_vein", {}).get(side, True)
        # The vessels run in the extrapleural fat between the cartilages and the pleura: a thin fat
        # sleeve keeps the lung just off them. Drawn straight into the lung, a 2-3 mm artery was
        # blurred into it (median -580 HU inside the IMA label on CTA, generator 0.2).
        canvas.paint_tube(curve, q["radius"] + sleeve, L["mediastinal_fat"], "fat", only_over=pushed_back)
        plate = wall.get("ima_fat_plate_mm", {}).get(side)
        if plate is not None:
            _paint_ima_fat_plate(canvas, body, sign, st["half_width"], abs(x_ima) + plate,
                                 inset + 2 * q["radius"] + sleeve, (z_end, zs[0]), pushed_back)
        if with_vein:
            canvas.paint_tube(vein[2:], q["vein_radius"] + sleeve, L["mediastinal_fat"], "fat", only_over=pushed_back)
            # the vein first, beside the artery, so the artery wins where they touch
            canvas.paint_tube(vein[2:], q["vein_radius"], L["internal_mammary_veins"], "blood_vein", only_over=over)
        canvas.paint_tube(curve, q["radius"], label, "blood_left", only_over=over)
        info["ima_curves"][side] = curve
