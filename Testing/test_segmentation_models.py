"""The shipped models (whole heart, IMA/aorta) through the one-click pipeline: on synthetic test scans (seeds never used in
training) against the generator's labels, and on the real chest CTs.

Thresholds are regression guards set below the measured figures in docs/segmentation.md (a broken
pipeline: wrong orientation, normalisation or resampling, drops Dice to about 0); the project's
targets (mean Dice >= 0.92) are not met yet and are not claimed here.
"""

from __future__ import annotations

import numpy as np
import pytest

from CardiacAI.metrics import compare_labelmaps
from CardiacAI.models import ModelCatalog
from CardiacAI.postprocess import body_mask_from_ct
from CardiacAI.segmentation import segment
from CardiacAI.synthetic import GeneratorConfig, generate_case

TEST_SEED = 900_000  # training seeds are < 100, validation seeds 100000-300002


def _shipped(task: str):
    catalog = ModelCatalog.load()
    if not [e for e in catalog.models(task) if not e.hidden]:
        pytest.fail(f"the packaged catalog ships no model for {task}")
    return catalog.default_for(task)


@pytest.fixture(scope="module")
def cta_case():
    return generate_case(TEST_SEED, GeneratorConfig(protocol="cta", spacing_mm=(1.5,) * 3, fov="chest"))


def test_whole_heart_on_a_synthetic_cta_test_scan(cta_case):
    _shipped("whole-heart")
    result = segment(cta_case.image, "whole-heart", prefer_gpu=False)
    truth = cta_case.task_labels("whole-heart")
    scores = compare_labelmaps(result.labelmap, truth, {s.key: s.value for s in result.label_set.structures})
    dice = {k: m.dice for k, m in scores.items()}
    # whole-heart-densevnet 0.5.0 on generator 0.2.11: mean 0.878 on this scan, chambers 0.91-0.95; CTA mean 0.889
    # over seeds 900000-900002 (0.4.0: 0.879; 0.2.0 on generator 0.2.5: 0.857; docs/segmentation.md)
    assert np.mean(list(dice.values())) >= 0.8, dice
    for key in ("left_ventricle_cavity", "left_atrium", "right_atrium", "right_ventricle_cavity"):
        assert dice[key] >= 0.85, (key, dice[key])
    assert result.run["stages"][0]["stage"] == "localize"
    # the coronary sinus, drawn too wide into the fat round it, is trimmed to its lumen (twenty-third session: 0.723 ->
    # 0.738 on the CTA test scans, 0.781 -> 0.841 on the tuning scans)
    trim = result.run["lumen_tracking"]["enhanced_lumen_trim"]["coronary_sinus"]
    assert trim["trimmed"] and trim["removed_ml"] > 0 and trim["lumen_hu"] >= 150


#: The structures the shipped whole-heart model finds on each real CT (docs/segmentation.md, the real-scan review).
#: Model selection keeps them: three candidates that scored better on the synthetic tuning scans were not shipped
#: because each lost an atrium of LIDC-IDRI-0002 (the seventh cycle, and two cycles on the random field of view).
FOUND_ON_REAL_CT = {
    "lidc1_image": ("left_atrium", "left_ventricle_cavity", "left_ventricle_myocardium", "aorta",
                    "superior_vena_cava", "right_ventricle_cavity", "pulmonary_artery"),
    "lidc2_image": ("left_atrium", "left_ventricle_cavity", "left_ventricle_myocardium", "aorta",
                    "right_atrium", "right_ventricle_cavity", "pulmonary_artery"),
}


@pytest.mark.parametrize("case", ["lidc1_image", "lidc2_image"])
def test_whole_heart_on_real_chest_ct(case, request):
    image = request.getfixturevalue(case)
    _shipped("whole-heart")
    result = segment(image, "whole-heart", prefer_gpu=False)
    assert result.labelmap.same_geometry(image, atol=0)
    rows = {r["key"]: r for r in result.measurements}
    # What the shipped model gets right on this scan stays found (present, drawn and of at least its minimum volume).
    for key in FOUND_ON_REAL_CT[case]:
        assert rows[key]["present"], (key, rows[key])
        assert np.any(result.labelmap.array == result.label_set.by_key(key).value), key
    # The left ventricle is found in both scans, with a mass in the adult range (measured 81 g and 124 g with 0.5.0,
    # 78 g and 122 g with 0.4.0, 111 g and 142 g with 0.2.0).
    assert rows["left_ventricle_cavity"]["present"] and rows["left_ventricle_myocardium"]["present"]
    assert 40 <= rows["left_ventricle_myocardium"]["mass_g"] <= 300
    assert rows["aorta"]["present"]
    # Nothing is labelled outside the patient.
    labelled = result.labelmap.array > 0
    assert not np.any(labelled & ~body_mask_from_ct(image))
    # Every structure has a presence verdict, and an absent one says why.
    for row in result.measurements:
        assert row["present"] or row["reason"]
    # The enhanced aorta is drawn to its lumen; the unenhanced one (LIDC-IDRI-0002) is left as the network drew it.
    widened = result.run["lumen_tracking"]["enhanced_aorta_lumen"]
    if case == "lidc1_image":
        assert widened["followed"] and widened["widened_ml"] > 0 and widened["lumen_hu"] > 250
    else:
        assert not widened["followed"] and "not enhanced" in widened["reason"] and widened["widened_ml"] == 0


def test_whole_heart_aorta_on_real_contrast_ct_is_drawn_to_its_lumen(lidc1_image):
    """The whole-heart model draws LIDC-IDRI-0001's enhanced aorta as a core inside its lumen: of the descending
    aorta's lumen (tracked from a seed by benchmarks/real_aorta_check.py) it covered a median 71 % per slice, 11 % on
    its lowest slice, and it ended with the region of interest at slice 36, 90 mm above the scan's lower edge.
    Widened to the lumen at half maximum (twenty-second session) it covers at least 90 % of it on every slice of
    the region of interest (measured 0.94-1.00). Followed down from there to the scan's lower edge (twenty-third
    session) it covers at least 90 % of the lumen without its branches' origins, which the follower opens off (the
    lumen opened by a disc of half its equivalent radius; measured 0.98-1.00; of the whole tracked lumen 0.90-1.00,
    0.90 on slice 9, where it takes in the origins of three branches). On every slice it reaches at most 3 mm
    beyond the lumen (2.5 mm)."""
    from scipy import ndimage

    _shipped("whole-heart")
    result = segment(lidc1_image, "whole-heart", prefer_gpu=False)
    aorta = result.labelmap.array == result.label_set.by_key("aorta").value
    lumen = _real_descending_aorta_lumen(lidc1_image)
    top = int(np.nonzero(lumen.any(axis=(1, 2)))[0].max())
    assert aorta[0].any() and top >= 90  # every slice of the descending aorta is checked, the lowest included
    followed = result.run["lumen_tracking"]["descending_aorta"]
    assert followed["followed"] and followed["slices_added"] >= 30 and "lower edge" in followed["reason"]
    assert "edge of the field of view" in result.presence["aorta"].reason  # it runs on below the scan
    # the measurements count the aorta drawn beyond the network's region of interest too
    row = next(r for r in result.measurements if r["key"] == "aorta")
    assert row["volume_ml"] == pytest.approx(np.count_nonzero(aorta) * lidc1_image.voxel_volume_ml, abs=1e-3)
    region_start = result.run["stages"][-1]["region_kji"][0][0]
    assert region_start >= 30  # the network's region of interest ends well above the scan's lower edge
    for k in range(top + 1):
        reference = lumen[k]
        if k < region_start:  # followed: without the origins of the branches the follower opens off
            radius_px = np.sqrt(np.count_nonzero(reference) / np.pi)
            reference = ndimage.binary_opening(reference, _disc(0.5 * radius_px))
        assert np.count_nonzero(aorta[k] & reference) >= 0.9 * np.count_nonzero(reference), k
        distance = ndimage.distance_transform_edt(~lumen[k], sampling=lidc1_image.spacing[1::-1])
        assert distance[aorta[k] & (distance <= 15.0)].max() <= 3.0, k  # its own side: the ascending aorta is farther


def test_whole_heart_svc_on_real_contrast_ct_is_drawn_to_its_lumen(lidc1_image):
    """The whole-heart model draws LIDC-IDRI-0001's superior vena cava, filled with undiluted contrast (1700-2000 HU),
    as a core inside its bright lumen: of the lumen above 1000 HU touching it (on its slices 82-101) it covered a median
    55 % per slice. Widened to the lumen at half maximum as the aorta is (twenty-third session) it covers a median 87 %
    (0.51-0.99; the lower slices, where unenhanced blood swirls through the contrast, and those pressed against the
    aorta stay partly as drawn), and it takes nothing below the half-maximum level."""
    from scipy import ndimage

    _shipped("whole-heart")
    result = segment(lidc1_image, "whole-heart", prefer_gpu=False)
    svc = result.labelmap.array == result.label_set.by_key("superior_vena_cava").value
    widened = result.run["lumen_tracking"]["enhanced_lumen_widen"]["superior_vena_cava"]
    assert widened["followed"] and widened["widened_ml"] > 1.0 and widened["lumen_hu"] > 1000
    coverage = []
    for k in np.nonzero(svc.any(axis=(1, 2)))[0]:
        bright, _ = ndimage.label(lidc1_image.array[k] >= 1000)
        touching = np.unique(bright[svc[k]])
        lumen = np.isin(bright, touching[touching > 0])
        coverage.append(np.count_nonzero(lumen & svc[k]) / np.count_nonzero(lumen))
    assert np.median(coverage) >= 0.8, coverage
    # what the widening adds is lumen, at or above the half-maximum level: below it lie only the network's own rim
    # voxels (116 of the 5484, as before the widening)
    below = svc & (lidc1_image.array < widened["level_hu"] - 0.5)
    assert np.count_nonzero(below) <= 0.05 * np.count_nonzero(svc)


@pytest.mark.parametrize("model_id", [None, "ima-aorta-se-swin"])
def test_aorta_and_imas_on_a_synthetic_cta_test_scan(model_id):
    """The default ima-aorta-unet 0.7.0 and the SE + Swin ima-aorta-se-swin 0.2.0 on a test scan with a chest CT's
    voxel size (0.7 x 0.7 x 2.5 mm), both with the pipeline's lumen tracking and aorta followers: measured aorta
    0.952 / 0.967, left IMA 0.697 / 0.718, right IMA 0.670 / 0.746 on this seed of generator 0.2.12 (2026-11-23,
    eighteenth session; SE + Swin 0.1.0: 0.948, 0.709, 0.750; without the followers it missed the lowest 80 mm of
    the bent body's aorta, 0.889, and this test was an expected failure for it). Earlier: aorta 0.954 / 0.889, left
    IMA 0.587 / 0.558, right IMA 0.651 / 0.530
    on this seed of generator 0.2.11 (2026-11-22, ninth session, the U-Net in windows of up to 96 x 160 x 120; with 96³
    windows 0.964, 0.571, 0.648; U-Net 0.6.0 on it: 0.967, 0.569, 0.637; on generator 0.2.10, with
    intercostal muscle in front of the IMAs, SE + Swin's left IMA 0.545, the rest the same) (U-Net 0.5.0 on generator 0.2.9,
    whose left IMA runs unbroken in front of the heart: 0.951 / 0.889, 0.608 / 0.566, 0.569 / 0.541; 0.2.8: 0.951 / 0.889,
    0.554 / 0.529, 0.553 / 0.493; with nearest-neighbour labels, before the probabilities came back trilinear:
    0.943 / 0.883, 0.459 / 0.468, 0.470 / 0.407; on generator 0.2.5: U-Net 0.4.0 0.943, 0.493, 0.471, SE + Swin 0.953, 0.499,
    0.488; U-Net 0.3.0 on generator 0.2.3: 0.961, 0.532, 0.555; docs/segmentation.md; 0.1.0 found no IMA)."""
    _shipped("ima-aorta")
    case = generate_case(TEST_SEED, GeneratorConfig(protocol="cta", spacing_mm=(0.7, 0.7, 2.5), fov="chest"))
    result = segment(case.image, "ima-aorta", model_id=model_id, prefer_gpu=False)
    if model_id:
        assert result.run["model"]["id"] == model_id and result.run["model"]["architecture"] == "se_swin"
    keys = ("aorta", "left_internal_mammary_artery", "right_internal_mammary_artery")
    scores = compare_labelmaps(result.labelmap, case.task_labels("ima-aorta"),
                               {k: result.label_set.by_key(k).value for k in keys})
    assert scores["aorta"].dice >= 0.9, scores["aorta"]
    for key in keys[1:]:
        assert result.presence[key].present and scores[key].dice >= 0.45, (key, scores[key])


def test_ima_aorta_on_real_contrast_ct(lidc1_image):
    from scipy import ndimage

    _shipped("ima-aorta")
    result = segment(lidc1_image, "ima-aorta", prefer_gpu=False)
    assert result.labelmap.same_geometry(lidc1_image, atol=0)
    ls = result.label_set
    lab = result.labelmap.array
    aorta = lab == ls.by_key("aorta").value
    peri = lab == ls.by_key("periaortic_region").value
    assert result.presence["aorta"].present and 30 <= result.presence["aorta"].volume_ml <= 400
    # The periaortic region is derived from the aorta mask: outside it, touching it, and never farther from
    # the wall than the largest local diameter allows (40 mm cap).
    assert peri.any() and not np.any(peri & aorta)
    distance = ndimage.distance_transform_edt(~aorta, sampling=lidc1_image.spacing[::-1])
    assert distance[peri].max() <= 40.0 + max(lidc1_image.spacing)
    for key in ("left_internal_mammary_artery", "right_internal_mammary_artery", "peri_ima_region"):
        p = result.presence[key]
        assert p.present or p.reason  # an absent structure always says why
    # Both real IMAs are reported along most of their length, and only on the arteries. The network finds
    # stretches of them (0.7.0: 62.5 mm of the left in three pieces, 35 mm of the right in two); lumen tracking
    # follows each from there (2026-11-23: the left over slices 60-108, 122.5 mm, the right over 56-101, 115 mm).
    # The reference is each artery's track read off the scan (benchmarks/ima_lumen_tracking.py: the brightest
    # voxel slice by slice from points placed by eye; the right one in two stretches, as a costal cartilage
    # outshines it at slices 89-92): every labelled voxel lies on a slice the track reaches, within 3.5 mm of it
    # (the track is the brightest voxel, which may sit at one side of the 2-2.5 mm lumen: a lumen voxel can lie a
    # diameter and a voxel's diagonal from it; measured: all within 3 mm but one right-IMA voxel at 3.1 mm).
    tracks = _real_ima_tracks(lidc1_image)
    pixel = float(lidc1_image.spacing[0])
    for side, min_length_mm in (("left", 110.0), ("right", 100.0)):
        key = f"{side}_internal_mammary_artery"
        artery = lab == ls.by_key(key).value
        assert result.presence[key].present
        _assert_on_track(artery, tracks[side], pixel, side)
        length_mm = np.count_nonzero(artery.any(axis=(1, 2))) * lidc1_image.spacing[2]
        assert length_mm >= min_length_mm, f"the {side} IMA along {length_mm} mm only"
        tracked = result.run["lumen_tracking"][key]
        assert tracked["pieces_followed"] >= 1 and tracked["slices_after"] > tracked["slices_before"]
    assert result.presence["peri_ima_region"].present
    # The network stops the aorta at the diaphragm (slice 44); following the enhanced lumen continues it to the
    # scan's lower edge (2026-11-23: 42 slices, 105 mm). The reference is the descending aorta's lumen tracked from
    # a seed by benchmarks/real_aorta_check.py (above 200 HU, reviewed in its pictures): on every slice below the
    # network's end the aorta covers at least 90 % of it and reaches at most 3 mm beyond it (no vertebra, no
    # branch; measured: coverage 0.94-1.00, 2.1 mm at most).
    lumen = _real_descending_aorta_lumen(lidc1_image)
    for k in range(44):
        assert np.count_nonzero(aorta[k] & lumen[k]) >= 0.9 * np.count_nonzero(lumen[k]), k
        beyond = ndimage.distance_transform_edt(~lumen[k], sampling=lidc1_image.spacing[1::-1])[aorta[k]]
        assert beyond.max() <= 3.0, (k, beyond.max())
    followed = result.run["lumen_tracking"]["descending_aorta"]
    assert followed["followed"] and followed["slices_added"] >= 40 and "lower edge" in followed["reason"]
    assert "edge of the field of view" in result.presence["aorta"].reason  # it runs on below the scan
    # an arterial-phase scan: the IMAs' probabilities are left as the network gave them (aorta 381 HU on the model grid)
    decision = result.run["contrast_decision"]
    assert decision["unenhanced"] is False and decision["reference_mean_hu"] > 250 and not decision["class_weights"]
    # measurements.csv counts every voxel of the label map, the periaortic region beyond the midline band included
    assert result.run["stages"][-1]["region"] == "midline band"
    for row in result.measurements:
        voxels = np.count_nonzero(lab == row["value"])
        assert row["volume_ml"] == pytest.approx(voxels * lidc1_image.voxel_volume_ml, abs=1e-3), row["key"]


def test_se_swin_on_real_contrast_ct(lidc1_image):
    """The SE + Swin model (offered beside the default U-Net) on LIDC-IDRI-0001, with the pipeline's lumen tracking
    and aorta followers. Measured with 0.2.0 (2026-11-23, eighteenth session): the left IMA on slices 60-108
    (122.5 mm), every voxel within 3 mm of the real artery's track; no right IMA (its network finds no piece of it
    to follow); the descending aorta on every slice of the tracked lumen (Dice in the 10 mm tube 0.958,
    benchmarks/real_aorta_check.py). 0.1.0 labelled the left IMA on slices 60-110 with 26 of its 429 voxels more
    than 3 mm from the track, some beyond 3.5 mm (this test's left-IMA check fails it)."""
    _shipped("ima-aorta")
    result = segment(lidc1_image, "ima-aorta", model_id="ima-aorta-se-swin", prefer_gpu=False)
    assert result.run["model"]["id"] == "ima-aorta-se-swin"
    lab, ls = result.labelmap.array, result.label_set
    tracks = _real_ima_tracks(lidc1_image)
    pixel = float(lidc1_image.spacing[0])
    left = lab == ls.by_key("left_internal_mammary_artery").value
    _assert_on_track(left, tracks["left"], pixel, "left")
    length_mm = np.count_nonzero(left.any(axis=(1, 2))) * lidc1_image.spacing[2]
    assert length_mm >= 110.0, f"the left IMA along {length_mm} mm only"
    right = lab == ls.by_key("right_internal_mammary_artery").value
    _assert_on_track(right, tracks["right"], pixel, "right")  # absent, or on the artery
    # The descending aorta is drawn along all of its lumen: at least 80 % of it on every slice (measured: 0.83 at
    # slice 63, where the network's aorta meets the followed one; 0.90-1.00 elsewhere) and 95 % of it in all.
    aorta = lab == ls.by_key("aorta").value
    lumen = _real_descending_aorta_lumen(lidc1_image)
    for k in np.nonzero(lumen.any(axis=(1, 2)))[0]:
        assert np.count_nonzero(aorta[k] & lumen[k]) >= 0.8 * np.count_nonzero(lumen[k]), k
    assert np.count_nonzero(aorta & lumen) >= 0.95 * np.count_nonzero(lumen)


def _assert_on_track(artery: np.ndarray, course: dict[int, tuple[int, int]], pixel_mm: float, side: str) -> None:
    """Every voxel of ``artery`` (bool, K, J, I) lies on a slice the real artery's track reaches, within 3.5 mm of it
    (the track is the brightest voxel, which may sit at one side of the 2-2.5 mm lumen)."""
    for k, j, i in zip(*np.nonzero(artery)):
        assert k in course, f"{side} IMA voxel on slice {k}, beyond the real artery's slices"
        assert np.hypot(j - course[k][0], i - course[k][1]) * pixel_mm <= 3.5, (side, k, j, i, course[k])


def test_ima_aorta_on_real_noncontrast_ct(lidc2_image):
    """LIDC-IDRI-0002 has no contrast: the pipeline must say so and weight the IMAs, and whatever IMA it then
    reports must lie where an IMA runs, beside the sternum behind the anterior chest wall, not on the pulmonary
    vessels that earlier models and lower thresholds took for IMAs here (50-70 mm from the midline, 66-173 mm
    behind the front of the chest), nor on bone: unenhanced blood is 30-50 HU. Measured with U-Net 0.7.0: with 96³
    windows no IMA with weight 2, and with weight 3 a right IMA piece on the sternum's right edge (18 mm, mean 379 HU);
    with 96 x 160 x 120 windows right IMA pieces inside the sternum (377-389 HU), both refused here. Now (the bone
    rule drops the sternum pieces) a 10 mm right IMA piece at 23 HU, 20 mm right of the midline and 28 mm behind the
    front of the chest."""
    from scipy import ndimage

    _shipped("ima-aorta")
    result = segment(lidc2_image, "ima-aorta", prefer_gpu=False)
    decision = result.run["contrast_decision"]
    assert decision["unenhanced"] is True and decision["reference_mean_hu"] < 80  # unenhanced blood: 30-50 HU
    assert decision["class_weights"] == {"left_internal_mammary_artery": 2.0, "right_internal_mammary_artery": 2.0}
    assert result.presence["aorta"].present
    # The network leaves a 16 mm gap in the descending aorta just above the diaphragm (slices 57-69) and draws it
    # thin round there; the unenhanced aorta is followed down as the circle fitting its edge with the fat and the
    # lung (2026-11-23: slices 78-35, the gap bridged, diameters 22-24 mm): the descending aorta is one piece from
    # the arch (slice 192) to the network's lower piece (slice 11), round and 18-28 mm across on every slice of the
    # gap, on soft tissue (blood and wall 20-50 HU here), not on the fat or lung round it.
    followed = result.run["lumen_tracking"]["descending_aorta"]
    assert followed["followed"] and followed["slices_added"] >= 10 and followed["edge_offset_mm"] is None
    lab = result.labelmap.array
    aorta = lab == result.label_set.by_key("aorta").value
    pieces, _ = ndimage.label(aorta)
    descending = pieces == pieces[60][aorta[60]].max() if aorta[60].any() else np.zeros_like(aorta)
    ks = np.nonzero(descending.any(axis=(1, 2)))[0]
    assert ks.min() <= 15 and ks.max() >= 185, (ks.min(), ks.max())
    pixel_mm2 = float(lidc2_image.spacing[0] * lidc2_image.spacing[1])
    for k in range(57, 70):
        sections, n = ndimage.label(aorta[k])
        diameter = 2.0 * np.sqrt(np.count_nonzero(aorta[k]) * pixel_mm2 / np.pi)
        assert n == 1 and 18.0 <= diameter <= 28.0, (k, n, diameter)
    hu = lidc2_image.array[:80][aorta[:80]]
    assert 0.0 <= np.median(hu) <= 60.0 and np.mean(hu < -30.0) < 0.05
    # Of the ascending aorta (about 35 mm across) the network finds only a core 2-21 mm across; it is drawn as the
    # circle fitting its edge with the fat (2026-11-23: slices 143-180, 32-39 mm): on slices 150-175 the aorta's
    # frontmost cross-section is 28-42 mm across, round, on soft tissue.
    ascending = result.run["lumen_tracking"]["unenhanced_ascending_aorta"]
    assert ascending["followed"], ascending["reason"]
    for k in range(150, 176):
        sections, n = ndimage.label(aorta[k])
        front = min(range(1, n + 1), key=lambda v: np.nonzero(sections == v)[0].mean())  # j grows to the back
        section = sections == front
        diameter = 2.0 * np.sqrt(np.count_nonzero(section) * pixel_mm2 / np.pi)
        jj, ii = np.nonzero(section)
        extent = max(np.ptp(jj) + 1, np.ptp(ii) + 1) * lidc2_image.spacing[0]
        assert 28.0 <= diameter <= 42.0 and diameter / extent >= 0.85, (k, diameter, extent)
        assert np.median(lidc2_image.array[k][section]) >= 0.0, k
    # Below the arch the aorta crosses a slice twice. The network also took a vessel at the right hilum (slices
    # 149-172, up to 108 mm²) and one at the left hilum (slices 154-162, up to 171 mm²) for aorta;
    # on the slices where the ascending aorta's circle is drawn they are removed (2026-11-23, seventeenth session):
    # on slices 150-169 the aorta is two cross-sections.
    assert ascending["removed_ml"] > 0.0
    for k in range(150, 170):
        sections, n = ndimage.label(aorta[k])
        areas = np.sort(np.bincount(sections.ravel())[1:])[::-1] * pixel_mm2
        assert areas.size >= 2 and areas[1] >= 200.0 and (areas.size == 2 or areas[2] < 10.0), (k, areas)
    # Where the ascending aorta turns into the arch (slices 181-192) its cross-section stretches back towards the
    # descending aorta, no circle fits, and the network has only the arch's back part, 1-2 mm from the ascending
    # aorta's top. The soft tissue between them is drawn (2026-11-23, twentieth session: slices 181-191, 15.5 mL,
    # median 36 HU, 0.3 % below -30 HU): the aorta is one vessel from the root to the hiatus, on soft tissue.
    assert "joined to the network's arch over its top" in ascending["reason"], ascending["reason"]
    assert ndimage.label(aorta, np.ones((3, 3, 3)))[1] == 1
    arch_hu = lidc2_image.array[181:192][aorta[181:192]]
    assert np.median(arch_hu) >= 0.0 and np.mean(arch_hu < -30.0) < 0.05
    # Above the arch (its top at slice 192) the network took one of its branches, 8.8 mm wide, for aorta (slices
    # 203-222); a piece narrower than the aorta wholly above it is removed (seventeenth session): none is left there.
    assert not aorta[196:].any(), np.nonzero(aorta[196:].any(axis=(1, 2)))[0] + 196
    body = body_mask_from_ct(lidc2_image)
    spacing = lidc2_image.spacing  # (i, j, k) mm; axial slices, j from front to back, i from right to left
    midline_i = float(np.median(np.nonzero(body)[2]))
    for key in ("left_internal_mammary_artery", "right_internal_mammary_artery"):
        artery = lab == result.label_set.by_key(key).value
        assert not artery.any() or lidc2_image.array[artery].mean() < 200.0, (key, lidc2_image.array[artery].mean())
        for k, j, i in zip(*np.nonzero(artery)):
            front = int(np.argmax(body[k, :, i]))  # the body's first row in this column
            assert abs(i - midline_i) * spacing[0] <= 50.0, (key, k, j, i)
            assert (j - front) * spacing[1] <= 45.0, (key, k, j, i, front)


def _disc(radius_px: float) -> np.ndarray:
    """A disc of ``radius_px`` pixels, bool (2r + 1, 2r + 1), for opening a cross-section."""
    r = int(np.ceil(radius_px))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= radius_px * radius_px


def _real_descending_aorta_lumen(image) -> np.ndarray:
    """The contrast-filled lumen of LIDC-IDRI-0001's descending aorta, bool (K, J, I), slices 0-95
    (benchmarks/real_aorta_check.py)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import real_aorta_check

    return real_aorta_check.track_lumen(image.array, real_aorta_check.SEED, image.spacing)


def _real_ima_tracks(image) -> dict[str, dict[int, tuple[int, int]]]:
    """side -> {slice k: (j, i)} of the real internal mammary arteries of LIDC-IDRI-0001
    (benchmarks/ima_lumen_tracking.py)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from ima_lumen_tracking import reference_tracks

    return reference_tracks(image.array)
