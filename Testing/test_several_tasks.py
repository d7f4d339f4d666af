"""Several segmentation tasks on one scan read once (``cardiacai segment --task whole-heart --task
ima-aorta``), for one scan and for a cohort: each task writes what it would write alone into its own
folder, earlier results are checked before any work, and models go to the task they are for.
Tiny untrained models: no accuracy claims."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import CardiacAI.io
from CardiacAI import cli
from CardiacAI.cohort import COHORT_TABLE, segment_cohort
from CardiacAI.errors import InputError, ModelError
from CardiacAI.image import Image
from CardiacAI.io import write_image
from CardiacAI.models import ModelCatalog, catalog_entry_from_card
from CardiacAI.models import catalog as catalog_module
from CardiacAI.segmentation import OUTPUT_FILES, models_for_tasks
from model_fixtures import write_random_model

BOTH = ["whole-heart", "ima-aorta"]


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    entries = [
        catalog_entry_from_card(write_random_model(root / "wh", "whole-heart", 1), "wh", "1.0.0", "WH",
                                catalog_dir=root, default=True),
        catalog_entry_from_card(write_random_model(root / "ima", "ima-aorta", 2), "ima", "1.0.0", "IMA",
                                catalog_dir=root, default=True),
        catalog_entry_from_card(write_random_model(root / "ima2", "ima-aorta", 3), "ima-other", "2.0.0", "IMA 2",
                                catalog_dir=root),
    ]
    path = root / "catalog.json"
    path.write_text(json.dumps({"schema_version": 1, "models": entries}))
    return path


@pytest.fixture
def packaged(catalog_path, monkeypatch):
    """The command line reads the packaged catalog: point it at the tiny models."""
    monkeypatch.setattr(catalog_module, "DEFAULT_CATALOG_PATH", catalog_path)
    return ModelCatalog.load(catalog_path)


@pytest.fixture
def reads(monkeypatch):
    """Count the scans read from disk."""
    calls = []
    real = CardiacAI.io.read_image

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(CardiacAI.io, "read_image", counting)
    return calls


def _ct_file(path, seed: int = 0):
    rng = np.random.default_rng(seed)
    k, j, i = np.indices((16, 24, 24))
    arr = rng.normal(40, 15, k.shape)
    arr[((k - 8) / 5) ** 2 + ((j - 12) / 6) ** 2 + ((i - 12) / 6) ** 2 <= 1] = 350
    arr[:, :, :3] = -1000
    write_image(Image(arr.astype(np.int16), spacing=(3.0, 3.0, 3.0), origin=(0.0, 0.0, 0.0), modality="CT"), path)
    return path


def test_models_go_to_the_task_they_are_for(packaged):
    assert models_for_tasks(BOTH, [], packaged) == {"whole-heart": None, "ima-aorta": None}
    assert models_for_tasks(BOTH, ["ima-other"], packaged) == {"whole-heart": None, "ima-aorta": "ima-other"}
    with pytest.raises(InputError, match="'ima-other' is for the task 'ima-aorta', which this run does not do"):
        models_for_tasks(["whole-heart"], ["ima-other"], packaged)
    with pytest.raises(InputError, match="two models were given for the task 'ima-aorta'"):
        models_for_tasks(BOTH, ["ima", "ima-other"], packaged)
    with pytest.raises(InputError, match="given twice"):
        models_for_tasks(["ima-aorta", "ima-aorta"], [], packaged)
    with pytest.raises(InputError, match="unknown segmentation task 'coronaries'"):
        models_for_tasks(["coronaries"], [], packaged)
    with pytest.raises(ModelError, match="no model 'nope'"):
        models_for_tasks(BOTH, ["nope"], packaged)


def test_one_scan_several_tasks_reads_once_and_writes_a_folder_per_task(packaged, reads, tmp_path, capsys):
    ct = _ct_file(tmp_path / "patient.nii.gz")
    out = tmp_path / "out"
    assert cli.main(["segment", str(ct), "--task", "all", "-o", str(out), "--cpu", "--no-overview",
                     "--model", "ima-other", "--quiet"]) == 0
    assert reads == [str(ct)]
    for task, model in (("whole-heart", "wh"), ("ima-aorta", "ima-other")):
        folder = out / task
        assert all((folder / f).exists() for f in OUTPUT_FILES if f != "overview.png"), task
        run = json.loads((folder / "run.json").read_text())
        assert run["task"] == task and run["model"]["id"] == model
        keys = {row["key"] for row in csv.DictReader((folder / "measurements.csv").open())}
        assert ("left_ventricle_myocardium" in keys) == (task == "whole-heart")
        assert ("periaortic_region" in keys) == (task == "ima-aorta")
    # the reading is in the first task's record only
    assert "read_s" in json.loads((out / "whole-heart" / "run.json").read_text())["timings_s"]
    assert "read_s" not in json.loads((out / "ima-aorta" / "run.json").read_text())["timings_s"]
    printed = capsys.readouterr().out
    assert "== whole-heart ==" in printed and "== ima-aorta ==" in printed and "2 tasks in" in printed


def test_earlier_results_of_any_task_are_checked_before_the_first_task_runs(packaged, tmp_path, capsys):
    ct = _ct_file(tmp_path / "patient.nii.gz")
    out = tmp_path / "out"
    (out / "ima-aorta").mkdir(parents=True)
    (out / "ima-aorta" / "segmentation.seg.nrrd").write_text("a clinician's corrected segmentation")
    argv = ["segment", str(ct), "--task", "whole-heart", "--task", "ima-aorta", "-o", str(out), "--cpu",
            "--no-overview", "--quiet"]
    assert cli.main(argv) == 2
    assert "already holds results" in capsys.readouterr().err
    assert not any((out / "whole-heart" / f).exists() for f in OUTPUT_FILES)  # the first task never ran
    assert cli.main(argv + ["--overwrite"]) == 0
    kept = list((out / "ima-aorta").glob("previous-*/segmentation.seg.nrrd"))
    assert [p.read_text() for p in kept] == ["a clinician's corrected segmentation"]


def test_version_needs_exactly_one_model(packaged, tmp_path, capsys):
    ct = _ct_file(tmp_path / "patient.nii.gz")
    assert cli.main(["segment", str(ct), "--task", "all", "-o", str(tmp_path / "o"), "--model-version", "1.0.0"]) == 2
    assert "--model-version needs exactly one --model" in capsys.readouterr().err


def test_cohort_of_several_tasks_reads_each_scan_once_and_keeps_a_table_per_task(packaged, reads, tmp_path):
    inputs = [_ct_file(tmp_path / "patient1.nii.gz", 1), tmp_path / "notes.nii.gz", _ct_file(tmp_path / "patient2.nii.gz", 2)]
    inputs[1].write_text("not an image")
    out = tmp_path / "out"
    rows = segment_cohort(inputs, BOTH, out, prefer_gpu=False, overview=False, catalog=packaged)
    assert reads == [str(p) for p in inputs]  # once per scan, the bad one included
    assert [(r.scan, r.task, r.status) for r in rows] == [
        ("patient1", "whole-heart", "done"), ("patient1", "ima-aorta", "done"),
        ("notes", "whole-heart", "failed"), ("notes", "ima-aorta", "failed"),
        ("patient2", "whole-heart", "done"), ("patient2", "ima-aorta", "done")]
    assert rows[2].message == rows[3].message and "notes.nii.gz" in rows[3].message
    for task in BOTH:
        with open(out / task / COHORT_TABLE, newline="") as fh:
            table = list(csv.DictReader(fh))
        assert [(r["scan"], r["status"]) for r in table] == [("patient1", "done"), ("notes", "failed"),
                                                              ("patient2", "done")]
        assert ("lv_myocardial_mass_g" in table[0]) == (task == "whole-heart")
        assert all((out / task / "patient2" / f).exists() for f in OUTPUT_FILES if f != "overview.png")
    assert not (out / COHORT_TABLE).exists()
    # a re-run skips what is done, per task
    again = segment_cohort(inputs[:1], BOTH, out, prefer_gpu=False, overview=False, catalog=packaged)
    assert [r.status for r in again] == ["skipped", "skipped"]
