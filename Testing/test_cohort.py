"""Cohort runs (many CTs in one process): a table row per scan, bad scans recorded without stopping
the run, and re-runs that skip finished scans and never touch a clinician's corrected files.
Tiny untrained models: no accuracy claims."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from CardiacAI.cohort import COHORT_TABLE, scan_names, segment_cohort
from CardiacAI.errors import InputError
from CardiacAI.image import Image
from CardiacAI.io import write_image
from CardiacAI.models import ModelCatalog, catalog_entry_from_card
from CardiacAI.segmentation import OUTPUT_FILES
from model_fixtures import write_random_model


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> ModelCatalog:
    root = tmp_path_factory.mktemp("catalog")
    entry = catalog_entry_from_card(write_random_model(root / "seg", "whole-heart", 5, spacing_mm=4.0),
                                    "seg", "1.0.0", "Segmenter", catalog_dir=root, default=True)
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    return ModelCatalog.load(root / "catalog.json")


def _ct(seed: int) -> Image:
    rng = np.random.default_rng(seed)
    k, j, i = np.indices((16, 24, 24))
    arr = rng.normal(40, 15, k.shape)
    arr[((k - 8) / 5) ** 2 + ((j - 12) / 6) ** 2 + ((i - 12) / 6) ** 2 <= 1] = 350
    arr[:, :, :3] = -1000
    return Image(arr.astype(np.int16), spacing=(3.0, 3.0, 3.0), origin=(0.0, 0.0, 0.0), modality="CT")


def _table(out):
    with open(out / COHORT_TABLE, newline="") as fh:
        return list(csv.DictReader(fh))


def test_scan_names_drop_volume_extensions_and_stay_unique():
    assert scan_names(["a/case1.nii.gz", "b/case1.nrrd", "c/LIDC-IDRI-0001", "d/LIDC-IDRI-0001/"]) == [
        "case1", "case1-2", "LIDC-IDRI-0001", "LIDC-IDRI-0001-2"]


def test_cohort_writes_a_folder_and_a_row_per_scan_and_records_bad_scans(catalog, tmp_path):
    inputs = []
    for n in (1, 2):
        inputs.append(tmp_path / f"patient{n}.nii.gz")
        write_image(_ct(n), inputs[-1])
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("not an image")
    inputs.insert(1, bad)
    seen = []
    rows = segment_cohort(inputs, "whole-heart", tmp_path / "out", catalog=catalog, prefer_gpu=False,
                          overview=False, on_scan=lambda i, n, row: seen.append((i, n, row.status)))
    assert [r.status for r in rows] == ["done", "failed", "done"]
    assert seen == [(0, 3, "done"), (1, 3, "failed"), (2, 3, "done")]
    assert "notes.nii.gz" in rows[1].message
    table = _table(tmp_path / "out")
    assert [r["scan"] for r in table] == ["patient1", "notes", "patient2"]
    assert "aorta_ml" in table[0] and "lv_myocardial_mass_g" in table[0]
    for name, row in (("patient1", table[0]), ("patient2", table[2])):
        folder = tmp_path / "out" / name
        assert all((folder / f).exists() for f in OUTPUT_FILES if f != "overview.png")
        measured = {m["key"]: m for m in csv.DictReader((folder / "measurements.csv").open())}
        for key, m in measured.items():
            expected = f"{float(m['volume_ml']):.2f}" if m["present"] == "True" else ""
            assert row[f"{key}_ml"] == expected
    assert not (tmp_path / "out" / "notes").exists() or not any((tmp_path / "out" / "notes").iterdir())


def test_rerun_skips_finished_scans_and_keeps_corrected_files(catalog, tmp_path):
    path = tmp_path / "patient.nii.gz"
    write_image(_ct(7), path)
    out = tmp_path / "out"
    first = segment_cohort([path, path], "whole-heart", out, catalog=catalog, prefer_gpu=False, overview=False)
    corrected = out / "patient" / "segmentation.seg.nrrd"
    corrected.write_bytes(b"a clinician's corrected segmentation")
    again = segment_cohort([path, path], "whole-heart", out, catalog=catalog, prefer_gpu=False, overview=False)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert again[0].volumes_ml == pytest.approx(first[0].volumes_ml, abs=0.01)
    assert corrected.read_bytes() == b"a clinician's corrected segmentation"
    redo = segment_cohort([path], "whole-heart", out, catalog=catalog, prefer_gpu=False, overview=False,
                          overwrite=True)
    assert redo[0].status == "done"
    backups = list((out / "patient").glob("previous-*/segmentation.seg.nrrd"))
    assert [b.read_bytes() for b in backups] == [b"a clinician's corrected segmentation"]


def test_cohort_refuses_no_inputs_and_a_file_as_output(catalog, tmp_path):
    with pytest.raises(InputError, match="no input scans"):
        segment_cohort([], "whole-heart", tmp_path / "out", catalog=catalog)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        segment_cohort([tmp_path / "x.nii.gz"], "whole-heart", tmp_path / "file", catalog=catalog)


def test_ima_cohort_table_says_which_scans_were_segmented_as_unenhanced(tmp_path):
    """With a model that judges contrast, each IMA/aorta row says whether the scan was segmented as unenhanced and
    on what HU, from the run itself and, for a skipped scan, from the run.json its earlier run wrote."""
    from CardiacAI.cohort import CohortRow, cohort_table

    root = tmp_path / "catalog"
    entry = catalog_entry_from_card(write_random_model(root / "ima", "ima-aorta", 6, spacing_mm=4.0),
                                    "ima", "1.0.0", "IMA", catalog_dir=root, default=True)
    entry["unenhanced_weights"] = {"reference": "aorta", "below_hu": 120.0,
                                   "weights": {"left_internal_mammary_artery": 2.0}}
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    ima_catalog = ModelCatalog.load(root / "catalog.json")
    path = tmp_path / "patient.nii.gz"
    write_image(_ct(3), path)
    out = tmp_path / "out"
    done = segment_cohort([path], "ima-aorta", out, catalog=ima_catalog, prefer_gpu=False, overview=False)
    first = _table(out)
    recorded = json.loads((out / "patient" / "run.json").read_text())["contrast_decision"]
    assert done[0].contrast == recorded and first[0]["unenhanced"] == str(recorded["unenhanced"])
    hu = recorded["reference_mean_hu"]
    assert first[0]["contrast_reference_mean_hu"] == ("" if hu is None else f"{hu:.1f}")
    skipped = segment_cohort([path], "ima-aorta", out, catalog=ima_catalog, prefer_gpu=False, overview=False)
    assert skipped[0].status == "skipped" and _table(out) == [{**first[0], "status": "skipped",
                                                              "message": skipped[0].message, "seconds": "0.00"}]
    text = cohort_table([CohortRow("a", "a", "done", contrast={"unenhanced": True, "reference_mean_hu": 35.24}),
                         CohortRow("b", "b", "failed", "unreadable")], "ima-aorta")
    rows = list(csv.DictReader(text.splitlines()))
    assert (rows[0]["unenhanced"], rows[0]["contrast_reference_mean_hu"]) == ("True", "35.2")
    assert (rows[1]["unenhanced"], rows[1]["contrast_reference_mean_hu"]) == ("", "")
    assert "unenhanced" not in cohort_table([], "whole-heart")
