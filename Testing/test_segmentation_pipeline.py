"""The one-click segmentation pipeline's plumbing, with tiny untrained models (no accuracy claims):
two-stage localisation and cropping, exact input geometry, the output folder, cancel, and never
losing earlier results. Accuracy on real and synthetic scans is tested with the shipped models in
test_segmentation_models.py."""

from __future__ import annotations

import csv
import json
import threading

import numpy as np
import pytest

from CardiacAI.errors import InputError, OperationCancelled
from CardiacAI.image import Image
from CardiacAI.models import ModelCatalog, catalog_entry_from_card
from CardiacAI.segmentation import (
    OUTPUT_FILES,
    crop_box_around,
    crop_image,
    inference_window,
    prepare_output_folder,
    segment,
    write_outputs,
)
from model_fixtures import write_random_model


def _two_stage_catalog_in(root, **fields) -> ModelCatalog:
    """A catalog of random whole-heart models in ``root``: a localiser and a segmenter (the default) run on the
    region it finds, the segmenter's entry with ``fields`` added."""
    loc = catalog_entry_from_card(write_random_model(root / "loc", "whole-heart", 1, spacing_mm=6.0),
                                  "loc", "1.0.0", "Localiser", catalog_dir=root)
    loc["hidden"] = True
    main = catalog_entry_from_card(write_random_model(root / "seg", "whole-heart", 2, spacing_mm=3.0),
                                   "seg", "1.0.0", "Segmenter", catalog_dir=root, default=True)
    main["localizer"] = {"model": "loc", "margin_mm": 10.0}
    main.update(fields)
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [loc, main]}))
    return ModelCatalog.load(root / "catalog.json")


@pytest.fixture(scope="module")
def two_stage_catalog(tmp_path_factory) -> ModelCatalog:
    return _two_stage_catalog_in(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="module")
def ct() -> Image:
    """A small oblique CT-like volume (HU) off the origin: bright blobs in soft tissue, air at one side."""
    rng = np.random.default_rng(3)
    k, j, i = np.indices((24, 30, 36))
    arr = rng.normal(40, 15, k.shape)
    arr[((k - 12) / 7) ** 2 + ((j - 15) / 8) ** 2 + ((i - 16) / 8) ** 2 <= 1] = 350
    arr[:, :, :4] = -1000
    a = np.radians(10)
    direction = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return Image(arr.astype(np.int16), spacing=(2.5, 2.5, 3.0), origin=(-40.0, 20.0, -100.0),
                 direction=direction, modality="CT", metadata={"source_path": "synthetic"})


def test_result_is_on_exactly_the_input_grid_and_records_both_stages(two_stage_catalog, ct):
    result = segment(ct, "whole-heart", catalog=two_stage_catalog, prefer_gpu=False)
    assert result.labelmap.same_geometry(ct, atol=0)
    assert result.labelmap.array.dtype == np.uint8
    assert set(np.unique(result.labelmap.array)) <= set([0] + list(result.label_set.values))
    stages = [s["stage"] for s in result.run["stages"]]
    assert stages == ["localize", "segment"]
    assert result.run["model"]["id"] == "seg" and result.run["device"] == "cpu"
    assert "CPU" in result.run["device_reason"]
    assert len(result.measurements) == 10 and len(result.presence) == 10


def test_crop_keeps_every_voxel_at_its_physical_position(ct):
    labels = np.zeros(ct.array.shape, np.uint8)
    labels[10:14, 12:20, 15:25] = 1
    box = crop_box_around(labels, ct.spacing, margin_mm=5.0)
    # margin 5 mm: 2 voxels along k (3 mm), 2 along j and i (2.5 mm)
    assert box == (slice(8, 16), slice(10, 22), slice(13, 27))
    sub = crop_image(ct, box)
    assert np.array_equal(sub.array, ct.array[box])
    assert np.allclose(sub.ijk_to_lps @ [0, 0, 0, 1], ct.ijk_to_lps @ [13, 10, 8, 1])
    assert crop_box_around(np.zeros_like(labels), ct.spacing, 5.0) is None


def test_inference_window_covers_small_regions_in_one_window():
    assert inference_window((40, 60, 70), (48, 48, 48), 8) == (48, 64, 72)
    assert inference_window((200, 300, 300), (48, 48, 48), 8) == (96, 96, 96)


def test_a_model_s_own_window_cap_is_rounded_to_its_divisor_and_never_below_its_patch():
    # the IMA/aorta U-Net's cap (k, j, i) on LIDC-IDRI-0001's midline band (model grid 167 x 278 x 202)
    assert inference_window((167, 278, 202), (32, 96, 96), 8, (96, 160, 120)) == (96, 160, 120)
    assert inference_window((167, 278, 202), (32, 96, 96), 16, (96, 160, 120)) == (96, 160, 112)
    assert inference_window((40, 60, 70), (32, 96, 96), 8, (96, 160, 120)) == (40, 96, 96)
    assert inference_window((200, 300, 300), (48, 48, 48), 8, (20, 100, 300)) == (48, 96, 296)


def test_output_folder_holds_every_file_with_names_codes_and_measurements(two_stage_catalog, ct, tmp_path):
    from CardiacAI.io import read_labelmap
    from CardiacAI.slicer_bridge import read_seg_nrrd

    result = segment(ct, "whole-heart", catalog=two_stage_catalog, prefer_gpu=False)
    out = tmp_path / "out"
    assert prepare_output_folder(out) is None
    paths = write_outputs(result, ct, out)
    assert sorted(paths) == sorted(OUTPUT_FILES)
    assert np.array_equal(read_labelmap(out / "segmentation.nii.gz", reference=ct).array, result.labelmap.array)
    assert np.array_equal(read_seg_nrrd(out / "segmentation.seg.nrrd", result.label_set, ct).array,
                          result.labelmap.array)
    labels = json.loads((out / "labels.json").read_text())
    assert labels["labels"]["5"]["key"] == "aorta" and labels["labels"]["5"]["codes"]["type"]["value"] == "15825003"
    assert all("present" in v and "reason" in v for v in labels["labels"].values())
    rows = list(csv.DictReader((out / "measurements.csv").open()))
    assert [r["key"] for r in rows] == [s.key for s in result.label_set.structures]
    myo = next(r for r in rows if r["key"] == "left_ventricle_myocardium")
    assert myo["mass_g"] == "" or float(myo["mass_g"]) == pytest.approx(float(myo["volume_ml"]) * 1.05, abs=0.01)
    run = json.loads((out / "run.json").read_text())
    assert run["model"]["id"] == "seg" and "write_outputs_s" in run["timings_s"] and "presence" in run


def test_earlier_results_are_never_overwritten_silently(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "segmentation.seg.nrrd").write_text("a clinician's corrected segmentation")
    with pytest.raises(InputError, match="already holds results"):
        prepare_output_folder(out)
    backup = prepare_output_folder(out, overwrite=True)
    assert backup is not None and backup.parent == out
    assert (backup / "segmentation.seg.nrrd").read_text() == "a clinician's corrected segmentation"
    assert not (out / "segmentation.seg.nrrd").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prepare_output_folder(tmp_path / "file")


def test_cancel_stops_the_run(two_stage_catalog, ct):
    cancel = threading.Event()

    def progress(fraction, message):
        if fraction > 0.05:
            cancel.set()

    with pytest.raises(OperationCancelled, match="cancelled"):
        segment(ct, "whole-heart", catalog=two_stage_catalog, prefer_gpu=False, progress=progress, cancel=cancel)


def test_unknown_task_and_non_ct_are_refused(two_stage_catalog, ct):
    with pytest.raises(InputError, match="unknown segmentation task"):
        segment(ct, "kidneys", catalog=two_stage_catalog)
    mr = ct.with_array(ct.array, modality="MR")
    with pytest.raises(InputError, match="needs CT"):
        segment(mr, "whole-heart", catalog=two_stage_catalog)


def test_task_without_a_model_says_how_to_get_one(two_stage_catalog, ct):
    from CardiacAI.errors import ModelError

    with pytest.raises(ModelError, match="no model for the task 'ima-aorta'"):
        segment(ct, "ima-aorta", catalog=two_stage_catalog)


def test_region_of_interest_ignores_scattered_false_positives():
    from CardiacAI.segmentation import heart_region

    labels = np.zeros((40, 40, 40), np.uint8)
    labels[10:25, 12:28, 15:30] = 3  # the heart: chambers touching each other
    labels[18:22, 15:20, 20:26] = 4
    labels[0:2, 0:2, 38:40] = 5  # specks far away (an arm, the table)
    labels[39, 39, 0] = 2
    box = crop_box_around(heart_region(labels), (1.0, 1.0, 1.0), margin_mm=2.0)
    assert box == (slice(8, 27), slice(10, 30), slice(13, 32))


def test_region_of_interest_is_capped_around_the_chambers():
    """A localiser that also labels the liver (as the first localiser did on the contrast chest CT): the
    region stays at most max_size_mm long per axis, around the chambers, and still holds all of them."""
    from CardiacAI.labels import get_label_set
    from CardiacAI.segmentation import region_of_interest

    labels = np.zeros((100, 60, 60), np.uint8)  # 2 mm voxels: 200 mm along k
    labels[60:80, 20:40, 20:40] = 3  # left ventricular cavity, high up
    labels[10:60, 15:45, 15:45] = 5  # "aorta" running down into the liver, touching the heart
    whole_heart = get_label_set("whole-heart")
    uncapped = region_of_interest(labels, whole_heart, (2.0, 2.0, 2.0), margin_mm=10.0)
    assert uncapped == (slice(5, 85), slice(10, 50), slice(10, 50))
    capped = region_of_interest(labels, whole_heart, (2.0, 2.0, 2.0), margin_mm=10.0, max_size_mm=[200.0, 200.0, 80.0])
    assert capped == (slice(45, 85), slice(10, 50), slice(10, 50))  # k: 40 voxels = 80 mm, ending at the box
    assert np.count_nonzero(labels[capped] == 3) == np.count_nonzero(labels == 3)
    assert region_of_interest(np.zeros_like(labels), whole_heart, (2.0, 2.0, 2.0), 10.0, 80.0) is None


def test_region_of_interest_cap_follows_the_patient_axes():
    """The cap is given along L-R, A-P and S-I; on a scan stored sagittally (index axes permuted) each
    index axis must take the length of the patient axis it runs along."""
    from CardiacAI.segmentation import max_size_on_index_axes

    assert max_size_on_index_axes([190.0, 180.0, 250.0], np.eye(3)) == (250.0, 180.0, 190.0)  # (k, j, i)
    # sagittal slices: i runs A-P (+y), j runs S-I (-z), k runs L-R (+x)
    sagittal = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    assert max_size_on_index_axes([190.0, 180.0, 250.0], sagittal) == (190.0, 250.0, 180.0)
    assert max_size_on_index_axes(200.0, sagittal) == (200.0, 200.0, 200.0)


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0]),
                                       np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])],
                         ids=["LPS", "RAS-like flips", "sagittal"])
def test_box_from_the_localiser_grid_covers_the_same_patient_space_on_the_scan(direction):
    """The localiser's region of interest is found on its own 6 mm grid and taken to the scan's grid:
    exactly the scan voxels whose centres lie inside the box's voxels, whatever the scan's direction."""
    from CardiacAI.segmentation import box_onto_grid

    coarse = Image(np.zeros((12, 10, 11), np.uint8), spacing=(6.0, 6.0, 6.0), origin=(-33.0, -30.0, -40.0))
    scan = Image(np.zeros((31, 45, 40), np.int16), spacing=(1.7, 1.3, 2.5), origin=(-10.0, -12.0, 5.0),
                 direction=direction)
    box = (slice(3, 9), slice(2, 7), slice(4, 10))
    mapped = box_onto_grid(box, coarse, scan)
    # brute force: every scan voxel centre, in the coarse grid's continuous (i, j, k) index
    k, j, i = np.indices(scan.array.shape)
    centres = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)], axis=1) @ scan.ijk_to_lps.T
    index = (centres @ np.linalg.inv(coarse.ijk_to_lps).T)[:, :3]
    lo = np.array([box[2].start, box[1].start, box[0].start]) - 0.5
    hi = np.array([box[2].stop, box[1].stop, box[0].stop]) - 0.5
    inside = np.all((index >= lo - 1e-6) & (index <= hi + 1e-6), axis=1).reshape(scan.array.shape)
    assert inside.any() and not inside.all()
    expected = np.zeros_like(inside)
    expected[mapped] = True
    np.testing.assert_array_equal(expected, inside)
    far_away = Image(np.zeros((4, 4, 4), np.int16), spacing=(1.0, 1.0, 1.0), origin=(500.0, 500.0, 500.0))
    assert box_onto_grid(box, coarse, far_away) is None


def test_task_without_localiser_runs_on_the_body_box_only(tmp_path, ct):
    root = tmp_path / "catalog"
    entry = catalog_entry_from_card(write_random_model(root / "ima", "ima-aorta", 4, spacing_mm=3.0),
                                    "ima", "1.0.0", "IMA", catalog_dir=root, default=True)
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    result = segment(ct, "ima-aorta", catalog=ModelCatalog.load(root / "catalog.json"), prefer_gpu=False)
    assert result.labelmap.same_geometry(ct, atol=0)
    (k0, k1), (j0, j1), (i0, i1) = result.run["stages"][0]["region_kji"]
    # the air columns i < 4 are outside the body: the box starts 5 mm (2 voxels of 2.5 mm) before the body
    assert (k0, k1, j0, j1, i1) == (0, 24, 0, 30, 36) and i0 == 2
    assert not result.labelmap.array[:, :, :4].any()
    assert "body_s" in result.run["timings_s"]


@pytest.mark.parametrize("cap, expected", [(None, (12, 12, 12)), ((16, 20, 24), (16, 20, 24))])
def test_the_sliding_window_is_capped_by_the_model_s_catalog_entry(tmp_path, ct, monkeypatch, cap, expected):
    """A model's catalog field max_inference_window caps its windows (k, j, i); without it every axis is capped at
    MAX_INFERENCE_WINDOW (set to 12 here so that the small scan needs more than one window)."""
    import CardiacAI.segmentation as segmentation_module

    root = tmp_path / "catalog"
    entry = catalog_entry_from_card(write_random_model(root / "ima", "ima-aorta", 4, spacing_mm=3.0),
                                    "ima", "1.0.0", "IMA", catalog_dir=root, default=True)
    if cap:
        entry["max_inference_window"] = list(cap)
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    monkeypatch.setattr(segmentation_module, "MAX_INFERENCE_WINDOW", 12)
    windows = []
    real = segmentation_module.sliding_window_logits

    def recording(volume, network, *, roi_size, **kwargs):
        windows.append((tuple(roi_size), volume.shape))
        return real(volume, network, roi_size=roi_size, **kwargs)

    monkeypatch.setattr(segmentation_module, "sliding_window_logits", recording)
    segment(ct, "ima-aorta", catalog=ModelCatalog.load(root / "catalog.json"), prefer_gpu=False)
    assert len(windows) == 1
    roi, shape = windows[0]
    assert all(size > cap_k for size, cap_k in zip(shape, expected))  # the cap, not the volume, sets the window
    assert roi == expected


# -- midline band (one-stage models whose structures lie near the midline) ---------------------------


def test_midline_band_centres_on_the_trunk_when_an_arm_lies_beside_it():
    from CardiacAI.segmentation import midline_band

    body = np.zeros((10, 40, 200), bool)
    body[:, 5:35, 20:120] = True  # trunk: midline at i = 70
    body[:, 10:20, 170:190] = True  # one arm down beside the chest, the other raised out of view
    box = crop_box_around(body, (1.0, 1.0, 2.0), margin_mm=0.0)
    assert box[2] == slice(20, 190)  # the box's centre (i = 105) would put the band on the arm's side
    band = midline_band(body, box, (1.0, 1.0, 2.0), np.eye(3), width_mm=60.0)
    assert band[:2] == box[:2]
    centre = (band[2].start + band[2].stop - 1) / 2
    assert abs(centre - 70) <= 5  # the arm (6 % of the body) moves the median by 3 voxels
    assert band[2].stop - band[2].start == 61


def test_midline_band_follows_the_patient_axes_and_stays_inside_the_box():
    from CardiacAI.segmentation import left_right_axis, midline_band

    # sagittal slices: i runs A-P (+y), j runs S-I (-z), k runs L-R (+x)
    sagittal = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    assert left_right_axis(np.eye(3)) == 2 and left_right_axis(sagittal) == 0
    body = np.zeros((100, 20, 30), bool)
    body[10:90] = True  # L-R along k, 80 slices of 2 mm
    box = crop_box_around(body, (1.0, 1.0, 2.0), margin_mm=0.0)
    band = midline_band(body, box, (1.0, 1.0, 2.0), sagittal, width_mm=100.0)
    assert band[1:] == box[1:] and band[0].stop - band[0].start == 51  # 50 slices of 2 mm + the centre one
    assert abs((band[0].start + band[0].stop - 1) / 2 - 49.5) <= 0.5  # the body: slices 10-89
    # a band wider than the body leaves the box as it is
    assert midline_band(body, box, (1.0, 1.0, 2.0), sagittal, width_mm=400.0) == box


def test_reaching_the_band_side_counts_only_where_the_band_cut_the_scan():
    from CardiacAI.segmentation import reaches_band_side

    outer = (slice(0, 10), slice(0, 10), slice(0, 100))
    band = (slice(0, 10), slice(0, 10), slice(30, 70))
    labels = np.zeros((10, 10, 40), np.uint8)
    labels[4:6, 4:6, 10:30] = 4
    assert not reaches_band_side(labels, band, outer, axis=2)
    labels[4:6, 4:6, 38:40] = 4  # a small piece at the band's last columns: a false positive
    assert not reaches_band_side(labels, band, outer, axis=2)
    labels[4:6, 4:6, 10:40] = 4  # the vessel itself runs to the band's side, which ends before the scan does
    assert reaches_band_side(labels, band, outer, axis=2)
    # where the band's side is the scan's own side, nothing lies beyond it
    assert not reaches_band_side(labels, (band[0], band[1], slice(60, 100)), outer, axis=2)


@pytest.fixture()
def wide_ct() -> Image:
    """A chest-like CT 300 mm wide (L-R), the body in the middle 250 mm, air at both sides."""
    rng = np.random.default_rng(5)
    arr = rng.normal(40, 10, (8, 40, 120))
    arr[:, :, :10] = -1000
    arr[:, :, 110:] = -1000
    return Image(arr.astype(np.int16), spacing=(2.5, 2.5, 5.0), origin=(-150.0, -50.0, 0.0),
                 direction=np.eye(3), modality="CT", metadata={})


@pytest.fixture()
def band_catalog(tmp_path) -> ModelCatalog:
    root = tmp_path / "catalog"
    entry = catalog_entry_from_card(write_random_model(root / "ima", "ima-aorta", 4, spacing_mm=3.0),
                                    "ima", "1.0.0", "IMA", catalog_dir=root, default=True)
    entry["midline_band_mm"] = 150.0
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    return ModelCatalog.load(root / "catalog.json")


def _fake_vessel_predictor(x_mm: float, calls: list, arm_x_mm: float | None = None, value: int = 4):
    """A stand-in for the network: a vessel (label ``value``, default the aorta) 10 mm wide running S-I at
    LPS x = ``x_mm``, labelled wherever the region given to it reaches, and a false-positive piece as long
    at ``arm_x_mm`` (an arm)."""
    def predict(image, entry, network, device, **kwargs):
        calls.append(image.shape_ijk)
        i = np.arange(image.shape_ijk[0])
        x = (image.ijk_to_lps @ np.stack([i, 0 * i, 0 * i, 1 + 0 * i]))[0]
        labels = np.zeros(image.array.shape, np.uint8)
        labels[:, 10:20, np.abs(x - x_mm) <= 5] = value
        if arm_x_mm is not None:
            labels[:, 25:30, np.abs(x - arm_x_mm) <= 5] = value
        return image.with_array(labels, modality="", metadata={})
    return predict


def test_midline_band_segments_less_of_the_scan_and_widens_for_a_lateral_structure(
        monkeypatch, wide_ct, band_catalog):
    import CardiacAI.segmentation as seg

    calls = []
    monkeypatch.setattr(seg, "predict_labels", _fake_vessel_predictor(10.0, calls))
    result = segment(wide_ct, "ima-aorta", catalog=band_catalog, prefer_gpu=False)
    stage = result.run["stages"][0]
    (i0, i1) = stage["region_kji"][2]
    assert stage["region"] == "midline band" and len(calls) == 1
    # body i = 10..109 (x -125..+122.5 mm, midline about 0): a 150 mm band is 61 columns around it
    assert 59 <= i1 - i0 <= 61 and abs((i0 + i1 - 1) / 2 - 60) <= 2
    assert result.presence["aorta"].present

    calls.clear()
    # an unusually lateral left IMA across the band's side (an aorta so far out would be dropped:
    # CardiacAI.postprocess.NEAR_MIDLINE_MM), and a false positive wholly outside the band (x = 100-110 mm,
    # i = 100-104)
    monkeypatch.setattr(seg, "predict_labels", _fake_vessel_predictor(72.0, calls, arm_x_mm=105.0, value=1))
    fractions = []
    result = segment(wide_ct, "ima-aorta", catalog=band_catalog, prefer_gpu=False,
                     progress=lambda fraction, message: fractions.append(fraction))
    stage = result.run["stages"][0]
    assert stage["region"].startswith("body") and len(calls) == 2 and calls[1][0] > calls[0][0]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # the second pass never sends the bar back
    # the whole vessel, not only the part inside the band: x = -150 + 2.5 i within 67..77 mm is i = 87..90
    ima_columns = np.flatnonzero((result.labelmap.array == 1).any(axis=(0, 1)))
    assert ima_columns.min() == 87 and ima_columns.max() == 90  # and nothing of the piece in the arm


def test_a_catalog_entry_cannot_have_both_a_localiser_and_a_midline_band(two_stage_catalog, tmp_path):
    from CardiacAI.errors import ModelError

    root = tmp_path / "catalog"
    loc = catalog_entry_from_card(write_random_model(root / "loc", "whole-heart", 1, spacing_mm=6.0),
                                  "loc", "1.0.0", "Localiser", catalog_dir=root)
    main = catalog_entry_from_card(write_random_model(root / "seg", "whole-heart", 2, spacing_mm=3.0),
                                   "seg", "1.0.0", "Segmenter", catalog_dir=root, default=True)
    main["localizer"] = {"model": "loc"}
    main["midline_band_mm"] = 200.0
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [loc, main]}))
    with pytest.raises(ModelError, match="both a localizer and a midline band"):
        ModelCatalog.load(root / "catalog.json")


def _ima_catalog(tmp_path, **fields):
    """A catalog of one random IMA/aorta model, its entry with ``fields`` added."""
    root = tmp_path / "catalog"
    entry = catalog_entry_from_card(write_random_model(root / "ima", "ima-aorta", 4, spacing_mm=3.0),
                                    "ima", "1.0.0", "IMA", catalog_dir=root, default=True)
    entry.update(fields)
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    return ModelCatalog.load(root / "catalog.json")


def _unenhanced_entry(tmp_path, rule):
    return _ima_catalog(tmp_path, unenhanced_weights=rule).get("ima")


@pytest.mark.parametrize("aorta_hu, unenhanced", [(40.0, True), (380.0, False)])
def test_the_imas_are_weighted_only_on_a_scan_whose_aorta_is_unenhanced(tmp_path, aorta_hu, unenhanced):
    """An artery the network gives 0.3 against 0.7 background is labelled on an unenhanced scan (weight 3: 0.9 >
    0.7) and not on an enhanced one, judged by the mean HU of the voxels the network calls aorta."""
    from CardiacAI.inference import labels_from_probabilities
    from CardiacAI.segmentation import unenhanced_class_weights

    entry = _unenhanced_entry(tmp_path, {"reference": "aorta", "below_hu": 120.0,
                                         "weights": {"left_internal_mammary_artery": 3.0,
                                                     "right_internal_mammary_artery": 3.0}})
    probs = np.zeros((6, 4, 10, 10), np.float32)
    probs[0] = 1.0
    probs[:, :, 2:6, 2:6] = 0.0
    probs[4, :, 2:6, 2:6] = 1.0  # aorta
    probs[0, :, 8, 8], probs[1, :, 8, 8] = 0.7, 0.3  # a faint left IMA
    ct = np.full((4, 10, 10), -100.0, np.float32)
    ct[:, 2:6, 2:6] = aorta_hu
    grid = Image(ct, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3), modality="CT")
    weights, decision = unenhanced_class_weights(probs, grid, entry)
    assert decision["unenhanced"] is unenhanced and decision["reference_mean_hu"] == pytest.approx(aorta_hu)
    assert weights == ({1: 3.0, 2: 3.0} if unenhanced else {})
    # the same decision from the model-grid labels the pipeline has already computed
    assert unenhanced_class_weights(probs, grid, entry, model_labels=labels_from_probabilities(probs)) == (
        weights, decision)
    for value, weight in weights.items():
        probs[value] *= weight
    assert bool((labels_from_probabilities(probs)[:, 8, 8] == 1).all()) == unenhanced

    probs[4] = 0.0  # no aorta predicted: the scan is not judged, nothing weighted
    probs[0, :, 2:6, 2:6] = 1.0
    weights, decision = unenhanced_class_weights(probs, grid, entry)
    assert weights == {} and decision["reference_mean_hu"] is None and decision["unenhanced"] is False


def test_unenhanced_weights_must_name_structures_of_the_label_set(tmp_path):
    from CardiacAI.errors import ModelError

    with pytest.raises(ModelError, match="'lima' is not a structure of label set 'ima-aorta'"):
        _unenhanced_entry(tmp_path / "a", {"reference": "aorta", "below_hu": 120.0, "weights": {"lima": 3.0}})
    with pytest.raises(ModelError, match="unenhanced_weights"):  # the schema: a factor below 1 lowers, not lifts
        _unenhanced_entry(tmp_path / "b", {"reference": "aorta", "below_hu": 120.0,
                                           "weights": {"left_internal_mammary_artery": 0.5}})


def _lumen_tracking_catalog(tmp_path, rule):
    return _ima_catalog(tmp_path, lumen_tracking=rule)


def test_lumen_tracking_must_name_structures_of_the_label_set(tmp_path):
    from CardiacAI.errors import ModelError

    catalog = _lumen_tracking_catalog(tmp_path / "ok", {"structures": ["left_internal_mammary_artery"], "redraw": False})
    assert catalog.get("ima").lumen_tracking == {"structures": ["left_internal_mammary_artery"], "redraw": False}
    with pytest.raises(ModelError, match="lumen_tracking: 'lima' is not a structure of label set 'ima-aorta'"):
        _lumen_tracking_catalog(tmp_path / "a", {"structures": ["lima"]})
    with pytest.raises(ModelError, match="lumen_tracking"):  # the schema: nothing to follow is a mistake
        _lumen_tracking_catalog(tmp_path / "b", {"structures": []})
    with pytest.raises(ModelError, match="lumen_tracking"):
        _lumen_tracking_catalog(tmp_path / "c", {"redraw": True})
    catalog = _lumen_tracking_catalog(tmp_path / "aorta", {"descending_aorta": "aorta"})
    assert catalog.get("ima").lumen_tracking == {"descending_aorta": "aorta"}
    with pytest.raises(ModelError, match="lumen_tracking: 'thoracic_aorta' is not a structure"):
        _lumen_tracking_catalog(tmp_path / "d", {"descending_aorta": "thoracic_aorta"})
    catalog = _lumen_tracking_catalog(tmp_path / "ascending", {"unenhanced_ascending_aorta": "aorta"})
    assert catalog.get("ima").lumen_tracking == {"unenhanced_ascending_aorta": "aorta"}
    with pytest.raises(ModelError, match="lumen_tracking: 'ascending_aorta' is not a structure"):
        _lumen_tracking_catalog(tmp_path / "e", {"unenhanced_ascending_aorta": "ascending_aorta"})
    catalog = _lumen_tracking_catalog(tmp_path / "trim", {"enhanced_lumen_trim": ["aorta"]})
    assert catalog.get("ima").lumen_tracking == {"enhanced_lumen_trim": ["aorta"]}
    with pytest.raises(ModelError, match="lumen_tracking: 'coronary_sinus' is not a structure of label set 'ima-aor"):
        _lumen_tracking_catalog(tmp_path / "f", {"enhanced_lumen_trim": ["coronary_sinus"]})
    with pytest.raises(ModelError, match="lumen_tracking"):  # the schema: an empty list trims nothing
        _lumen_tracking_catalog(tmp_path / "g", {"enhanced_lumen_trim": []})
    catalog = _lumen_tracking_catalog(tmp_path / "widen", {"enhanced_lumen_widen": ["aorta"]})
    assert catalog.get("ima").lumen_tracking == {"enhanced_lumen_widen": ["aorta"]}
    with pytest.raises(ModelError, match="lumen_tracking: 'superior_vena_cava' is not a structure"):
        _lumen_tracking_catalog(tmp_path / "h", {"enhanced_lumen_widen": ["superior_vena_cava"]})


def test_the_pipeline_follows_an_enhanced_artery_and_records_it(tmp_path, monkeypatch):
    """With lumen tracking in its catalog entry, a model's stretch of a bright artery is followed along the
    artery's whole length in the scan, and the run record says what was added."""
    from CardiacAI import segmentation

    catalog = _lumen_tracking_catalog(tmp_path, {"structures": ["left_internal_mammary_artery"]})
    # a 2 mm, 320 HU artery down a fat-filled body, 12 mm left of its midline; the "network" finds 35 mm of it
    # (14 slices: an IMA piece must run 30 mm to be kept)
    ct = np.full((40, 60, 80), -80.0, np.float32)
    ct[:, :, :5] = ct[:, :, -5:] = ct[:, :3] = ct[:, -3:] = -1000.0  # air round the body
    jj, ii = np.mgrid[0:60, 0:80]
    artery = np.hypot((jj - 20) * 0.8, (ii - 55) * 0.8) <= 1.0
    ct[:, artery] += 400.0
    image = Image(ct, spacing=(0.8, 0.8, 2.5), origin=(0.0, 0.0, 0.0), direction=np.eye(3), modality="CT")

    def found_stretch(region, *args, **kwargs):
        labels = np.zeros(region.array.shape, np.uint8)
        labels[13:27][:, (region.array[20] > 200)] = 1
        return region.with_array(labels, modality="", metadata={})

    monkeypatch.setattr(segmentation, "predict_labels", found_stretch)
    result = segmentation.segment(image, "ima-aorta", catalog=catalog, prefer_gpu=False)
    left = result.labelmap.array == 1
    assert np.flatnonzero(left.any(axis=(1, 2))).tolist() == list(range(40))
    assert np.array_equal(left[10], artery)
    record = result.run["lumen_tracking"]["left_internal_mammary_artery"]
    assert record["slices_before"] == 14 and record["slices_after"] == 40 and record["length_added_mm"] == 65.0


def test_the_pipeline_continues_an_enhanced_descending_aorta_and_records_it(tmp_path, monkeypatch):
    """With ``descending_aorta`` in its catalog entry's lumen tracking, an aorta the network stops halfway down
    the scan is continued along its enhanced lumen to the scan's lower edge, the periaortic region follows it, and
    the run record says how far."""
    from CardiacAI import segmentation

    catalog = _lumen_tracking_catalog(tmp_path, {"descending_aorta": "aorta"})
    # a fat-filled body; an 18 mm descending aorta (380 HU) down all 40 slices, a 24 mm ascending aorta in front
    # of it on the upper 12; the "network" labels both on the upper 20 slices only
    ct = np.full((40, 90, 90), -80.0, np.float32)
    ct[:, :, :4] = ct[:, :, -4:] = ct[:, :3] = ct[:, -3:] = -1000.0  # air round the body
    jj, ii = np.mgrid[0:90, 0:90]
    descending = np.hypot((jj - 60) * 0.8, (ii - 50) * 0.8) <= 9.0
    ascending = np.hypot((jj - 22) * 0.8, (ii - 42) * 0.8) <= 12.0
    ct[:, descending] = 380.0
    ct[28:, ascending] = 380.0
    image = Image(ct, spacing=(0.8, 0.8, 2.5), origin=(0.0, 0.0, 0.0), direction=np.eye(3), modality="CT")

    def upper_aorta(region, *args, **kwargs):
        labels = np.zeros(region.array.shape, np.uint8)
        labels[20:][region.array[20:] > 200] = 4
        return region.with_array(labels, modality="", metadata={})

    monkeypatch.setattr(segmentation, "predict_labels", upper_aorta)
    result = segmentation.segment(image, "ima-aorta", catalog=catalog, prefer_gpu=False)
    aorta = result.labelmap.array == 4
    assert aorta.any(axis=(1, 2)).all()
    assert np.array_equal(aorta[5], descending)
    assert (result.labelmap.array[5] == 5).any()  # the periaortic region around the continued aorta
    record = result.run["lumen_tracking"]["descending_aorta"]
    assert record["structure"] == "aorta" and record["followed"] and record["slices_added"] == 20
    assert record["length_added_mm"] == 50.0 and "lower edge" in record["reason"]


def test_a_localised_model_s_aorta_is_followed_beyond_its_region_and_measured_there(tmp_path, monkeypatch):
    """The whole-heart model runs on a region of interest around the heart, which ends above the diaphragm; with
    ``descending_aorta`` in its lumen tracking the enhanced aorta is followed on below the region to the scan's
    lower edge (the region is grown along the long axis for the followers only), no other structure is drawn
    there, and measurements.csv counts the aorta's voxels below the region too."""
    from CardiacAI import segmentation

    catalog = _two_stage_catalog_in(tmp_path, lumen_tracking={"descending_aorta": "aorta"})
    # a fat-filled body; an 18 mm descending aorta (380 HU) down all 40 slices, a 24 mm ascending aorta in front of
    # it on the upper 8 and a 40 HU "heart" beside it on the upper 20; the region of interest holds the upper 20
    # slices, where the "network" labels the aorta and the heart
    ct = np.full((40, 90, 90), -80.0, np.float32)
    ct[:, :, :4] = ct[:, :, -4:] = ct[:, :3] = ct[:, -3:] = -1000.0  # air round the body
    jj, ii = np.mgrid[0:90, 0:90]
    descending = np.hypot((jj - 60) * 0.8, (ii - 50) * 0.8) <= 9.0
    ascending = np.hypot((jj - 22) * 0.8, (ii - 42) * 0.8) <= 12.0
    heart = np.hypot((jj - 30) * 0.8, (ii - 68) * 0.8) <= 10.0
    ct[:, descending] = 380.0
    ct[32:, ascending] = 380.0
    ct[20:, heart] = 40.0
    image = Image(ct, spacing=(0.8, 0.8, 2.5), origin=(0.0, 0.0, 0.0), direction=np.eye(3), modality="CT")
    region = (slice(20, 40), slice(5, 85), slice(5, 85))
    monkeypatch.setattr(segmentation, "region_of_interest", lambda *args, **kwargs: region)
    monkeypatch.setattr(segmentation, "box_onto_grid", lambda box, source, target: box)

    def aorta_and_heart(cropped, *args, **kwargs):
        labels = np.zeros(cropped.array.shape, np.uint8)
        labels[cropped.array > 200] = 5  # aorta
        labels[cropped.array == 40.0] = 3  # left ventricular cavity
        return cropped.with_array(labels, modality="", metadata={})

    monkeypatch.setattr(segmentation, "predict_labels", aorta_and_heart)
    result = segmentation.segment(image, "whole-heart", catalog=catalog, prefer_gpu=False)
    assert result.run["stages"][-1]["region_kji"][0] == [20, 40]
    labels = result.labelmap.array
    assert np.array_equal(labels[:20] == 5, np.broadcast_to(descending, (20, 90, 90)))
    assert set(np.unique(labels[:20])) == {0, 5}
    record = result.run["lumen_tracking"]["descending_aorta"]
    assert record["followed"] and record["slices_added"] == 20 and "lower edge" in record["reason"]
    rows = {row["key"]: row for row in result.measurements}
    for key, value in (("aorta", 5), ("left_ventricle_cavity", 3)):
        voxels = np.count_nonzero(labels == value)
        assert rows[key]["volume_ml"] == pytest.approx(voxels * image.voxel_volume_ml, abs=1e-3), key
    assert rows["aorta"]["hu_mean"] == pytest.approx(380.0)
