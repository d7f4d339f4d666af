"""Headless tests of the CardiacAISegment Slicer module (CardiacAISegment/CardiacAISegmentLib) with slicer-core.

The models here are tiny, untrained U-Nets with random weights, written with a valid model card
into a temporary catalog: they exercise the plumbing (nodes, geometry, table, cancel, backups),
never accuracy. The module file itself needs the Slicer application, so it is only parsed, and
its .ui file is checked against the widget names the code uses.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import re
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (headless MRML) is not installed")
torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "CardiacAISegment"
sys.path.insert(0, str(MODULE_DIR))  # where Slicer puts the module's folder, so CardiacAISegmentLib imports

from CardiacAISegmentLib import dependencies, worker
from CardiacAISegmentLib.logic import (
    MEASUREMENT_COLUMNS,
    MEASUREMENTS_REFERENCE,
    PREVIOUS_REFERENCE,
    SegmentationLogic,
)

from CardiacAI.errors import InputError, OperationCancelled
from CardiacAI.image import Image
from CardiacAI.labels import get_label_set
from CardiacAI.models import ModelCatalog, catalog_entry_from_card
from CardiacAI.segmentation import segment
from CardiacAI.slicer_bridge import (
    KEY_TAG,
    labelmap_from_segmentation_node,
    reference_geometry_string,
    volume_node_from_image,
)
from model_fixtures import write_random_model

TASK = "whole-heart"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> ModelCatalog:
    """A catalog with two whole-heart models (the second is the default) and a hidden one."""
    root = tmp_path_factory.mktemp("catalog")
    entries = [
        catalog_entry_from_card(write_random_model(root / "a", TASK, 1), "random-a", "1.0.0", "Random A",
                                catalog_dir=root),
        catalog_entry_from_card(write_random_model(root / "b", TASK, 2), "random-b", "1.0.0", "Random B",
                                catalog_dir=root, default=True),
        dict(catalog_entry_from_card(write_random_model(root / "c", TASK, 3), "random-hidden", "1.0.0",
                                     "Hidden stage", catalog_dir=root), hidden=True),
    ]
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": entries}))
    return ModelCatalog.load(root / "catalog.json")


@pytest.fixture(scope="module")
def ct_image() -> Image:
    """A small oblique-free CT-like volume (HU) with bright 'chambers', on a 3 mm grid not at the origin."""
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    k, j, i = np.indices((20, 24, 28))
    array = rng.normal(40, 15, k.shape)
    array[((k - 10) / 6) ** 2 + ((j - 12) / 7) ** 2 + ((i - 12) / 7) ** 2 <= 1] = 350
    array[((k - 9) / 5) ** 2 + ((j - 11) / 5) ** 2 + ((i - 20) / 5) ** 2 <= 1] = 250
    array[:, :, :3] = -1000
    return Image(array.astype(np.int16), spacing=(3.0, 3.0, 3.0), origin=(-40.0, -30.0, 100.0), modality="CT")


@pytest.fixture()
def scene():
    s = slicer.vtkMRMLScene()
    yield s
    s.Clear(1)


def _node_ids(scene) -> list[str]:
    return [scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())]


def _column(table_node, name) -> list:
    array = table_node.GetTable().GetColumnByName(name)
    assert array is not None, f"column {name!r} missing"
    return [array.GetValue(r) for r in range(array.GetNumberOfTuples())]


def _tag(segment, name):
    import vtk

    value = vtk.reference("")
    return value.get() if segment.GetTag(name, value) else None


def _volume(scene, image: Image, name="CT chest"):
    return volume_node_from_image(image, scene, name)


# -- models and device -------------------------------------------------------------------------------


def test_models_lists_visible_models_of_the_task_default_first(catalog, scene):
    logic = SegmentationLogic(scene, catalog)
    assert [(e.id, e.version) for e in logic.models(TASK)] == [("random-b", "1.0.0"), ("random-a", "1.0.0")]
    assert logic.models("ima-aorta") == []
    with pytest.raises(InputError, match="unknown segmentation task"):
        logic.models("coronaries")


def test_gpu_status_matches_torch_and_says_which_device(scene):
    available, text = SegmentationLogic.gpu_status()
    assert available == torch.cuda.is_available()
    assert ("CUDA GPU" in text) if available else text.startswith("Runs on the CPU")


# -- segmentation node ---------------------------------------------------------------------------------


def test_segmentation_node_holds_segment_result_with_label_set_segments(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    volume = _volume(scene, ct_image)
    out = logic.segment_volume(volume, TASK, prefer_gpu=False)
    expected = segment(ct_image, TASK, catalog=catalog, prefer_gpu=False)
    label_set = get_label_set(TASK)

    seg_node = out.segmentation_node
    got = labelmap_from_segmentation_node(seg_node, label_set, ct_image)
    assert len(np.unique(expected.labelmap.array)) >= 2  # the comparison below is not between empty maps
    np.testing.assert_array_equal(got.array, expected.labelmap.array)

    segmentation = seg_node.GetSegmentation()
    assert list(segmentation.GetSegmentIDs()) == [s.key for s in label_set]
    for structure in label_set:
        seg = segmentation.GetSegment(structure.key)
        assert seg.GetName() == structure.name
        assert seg.GetColor() == pytest.approx(structure.color)
        assert seg.GetTerminology() == structure.terminology_entry()
        assert _tag(seg, KEY_TAG) == structure.key

    # Reference geometry: the input volume's grid, referenced as Slicer's own function does.
    parameter = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    assert parameter == reference_geometry_string(ct_image)
    assert seg_node.GetNodeReferenceID("referenceImageGeometryRef") == volume.GetID()

    # Shown in slice and 3D views.
    assert seg_node.GetDisplayNode() is not None and seg_node.GetDisplayNode().GetVisibility()
    assert segmentation.ContainsRepresentation("Closed surface")
    present = [k for k, p in out.result.presence.items() if np.any(expected.labelmap.array == label_set.by_key(k).value)]
    surface = segmentation.GetSegment(present[0]).GetRepresentation("Closed surface")
    assert surface is not None and surface.GetNumberOfPoints() > 0

    run = json.loads(seg_node.GetAttribute("CardiacAI.Run"))
    assert (run["model"]["id"], run["task"]) == ("random-b", TASK)
    assert seg_node.GetName() == "CT chest whole heart"


def test_measurements_table_has_one_row_per_structure_with_units(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    out = logic.segment_volume(_volume(scene, ct_image), TASK, prefer_gpu=False, show_3d=False)
    table = out.table_node
    label_set = get_label_set(TASK)
    assert isinstance(table, slicer.vtkMRMLTableNode) and table.GetScene() is scene
    assert out.segmentation_node.GetNodeReferenceID(MEASUREMENTS_REFERENCE) == table.GetID()
    assert table.GetNumberOfColumns() == len(MEASUREMENT_COLUMNS)
    assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == [c[0] for c in MEASUREMENT_COLUMNS]
    assert table.GetNumberOfRows() == len(label_set)
    assert table.GetColumnUnitLabel("Volume (mL)") == "mL"
    assert table.GetColumnUnitLabel("LV mass (g)") == "g"
    assert table.GetColumnUnitLabel("HU mean") == "HU" and table.GetColumnUnitLabel("HU SD") == "HU"

    assert _column(table, "Key") == [s.key for s in label_set]
    assert _column(table, "Structure") == [s.name for s in label_set]
    assert _column(table, "Label") == list(label_set.values)
    labels = out.result.labelmap.array
    voxel_ml = float(np.prod(ct_image.spacing)) / 1000.0
    hu = ct_image.array
    for row, structure in enumerate(label_set):
        inside = labels == structure.value
        # Volume recomputed from the voxels here, not copied from the result.
        assert _column(table, "Volume (mL)")[row] == pytest.approx(inside.sum() * voxel_ml, abs=1e-3)
        present = out.result.presence[structure.key].present
        assert _column(table, "Present")[row] == ("yes" if present else "no")
        assert _column(table, "Reason")[row] == (out.result.presence[structure.key].reason or "")
        if inside.any():
            assert _column(table, "HU mean")[row] == pytest.approx(hu[inside].mean(), abs=0.05)
            assert _column(table, "HU SD")[row] == pytest.approx(hu[inside].std(), abs=0.05)
        else:
            assert math.isnan(_column(table, "HU mean")[row]) and math.isnan(_column(table, "HU SD")[row])
        mass = _column(table, "LV mass (g)")[row]
        if structure.key == "left_ventricle_myocardium":
            assert mass == pytest.approx(inside.sum() * voxel_ml * 1.05, abs=0.01)
        else:
            assert math.isnan(mass)


def test_every_run_without_output_creates_a_new_node(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    volume = _volume(scene, ct_image)
    first = logic.segment_volume(volume, TASK, prefer_gpu=False, show_3d=False)
    second = logic.segment_volume(volume, TASK, model_id="random-a", prefer_gpu=False, show_3d=False)
    assert first.segmentation_node.GetID() != second.segmentation_node.GetID()
    assert first.segmentation_node.GetName() != second.segmentation_node.GetName()
    # The first result is untouched by the second run (different model, different labels).
    again = labelmap_from_segmentation_node(first.segmentation_node, get_label_set(TASK), ct_image)
    np.testing.assert_array_equal(again.array, first.result.labelmap.array)
    assert not np.array_equal(first.result.labelmap.array, second.result.labelmap.array)


# -- existing segmentations: never overwritten without a way back ----------------------------------------


def _user_segmentation(scene, image: Image):
    """A segmentation a clinician drew by hand: one segment 'My correction' with a block of voxels."""
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName("Dr A edits")
    scene.AddNode(node)
    mask = np.zeros(image.array.shape, np.uint8)
    mask[4:9, 5:12, 6:14] = 1
    labelmap_node = volume_node_from_image(image.with_array(mask), scene, "drawn", labelmap=True)
    segment_id = node.GetSegmentation().AddEmptySegment("my_correction", "My correction")
    ids = vtk_string_array([segment_id])
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node, node, ids)
    scene.RemoveNode(labelmap_node)
    return node, mask


def vtk_string_array(values):
    import vtk

    array = vtk.vtkStringArray()
    for v in values:
        array.InsertNextValue(v)
    return array


def _mask_of(node, segment_id, image: Image) -> np.ndarray:
    """One segment's voxels (0/1, axes (k, j, i)) on ``image``'s grid, whatever the segment's name."""
    import vtk
    from vtk.util import numpy_support

    seg = node.GetSegmentation().GetSegment(segment_id)
    reference = slicer.vtkOrientedImageData()
    i, j, k = image.shape_ijk
    reference.SetDimensions(i, j, k)
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(image.ijk_to_ras[r, c]))
    reference.SetImageToWorldMatrix(matrix)
    resampled = slicer.vtkOrientedImageData()
    assert slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        seg.GetRepresentation("Binary labelmap"), reference, resampled)
    values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(k, j, i)
    return (values == seg.GetLabelValue()).astype(np.uint8)


def test_existing_segmentation_with_edits_is_refused_unless_replacement_is_confirmed(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    volume = _volume(scene, ct_image)
    user_node, mask = _user_segmentation(scene, ct_image)
    before = _node_ids(scene)
    with pytest.raises(InputError, match="already holds 1 segment"):
        logic.segment_volume(volume, TASK, output_node=user_node, prefer_gpu=False)
    with pytest.raises(InputError, match="already holds 1 segment"):
        logic.start(volume, TASK, output_node=user_node, prefer_gpu=False)
    assert _node_ids(scene) == before
    assert list(user_node.GetSegmentation().GetSegmentIDs()) == ["my_correction"]
    np.testing.assert_array_equal(_mask_of(user_node, "my_correction", ct_image), mask)


def test_replacing_keeps_a_hidden_copy_that_restore_brings_back(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    volume = _volume(scene, ct_image)
    user_node, mask = _user_segmentation(scene, ct_image)
    user_id = user_node.GetID()
    out = logic.segment_volume(volume, TASK, output_node=user_node, replace_existing=True, prefer_gpu=False,
                               show_3d=False)
    label_set = get_label_set(TASK)
    assert out.segmentation_node.GetID() == user_id  # written in place, as asked
    np.testing.assert_array_equal(labelmap_from_segmentation_node(user_node, label_set, ct_image).array,
                                  out.result.labelmap.array)
    assert user_node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()) == reference_geometry_string(ct_image)

    backup = out.previous_node
    assert backup is not None and backup.GetScene() is scene
    assert user_node.GetNodeReferenceID(PREVIOUS_REFERENCE) == backup.GetID()
    assert not backup.GetDisplayNode().GetVisibility()  # hidden, not deleted
    assert list(backup.GetSegmentation().GetSegmentIDs()) == ["my_correction"]
    np.testing.assert_array_equal(_mask_of(backup, "my_correction", ct_image), mask)

    # A second replacement chains a second copy; two restores give back the hand-drawn segment.
    second = logic.segment_volume(volume, TASK, model_id="random-a", output_node=user_node, replace_existing=True,
                                  prefer_gpu=False, show_3d=False)
    logic.restore_previous(user_node)
    np.testing.assert_array_equal(labelmap_from_segmentation_node(user_node, label_set, ct_image).array,
                                  out.result.labelmap.array)
    assert second.previous_node.GetScene() is None  # the restored copy left the scene
    logic.restore_previous(user_node)
    assert list(user_node.GetSegmentation().GetSegmentIDs()) == ["my_correction"]
    np.testing.assert_array_equal(_mask_of(user_node, "my_correction", ct_image), mask)
    assert backup.GetScene() is None and logic.previous_node(user_node) is None
    with pytest.raises(InputError, match="no previous segments"):
        logic.restore_previous(user_node)


def test_empty_output_node_is_filled_without_a_backup(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    volume = _volume(scene, ct_image)
    empty = slicer.vtkMRMLSegmentationNode()
    empty.SetName("Empty")
    scene.AddNode(empty)
    out = logic.segment_volume(volume, TASK, output_node=empty, prefer_gpu=False, show_3d=False)
    assert out.segmentation_node is empty and out.previous_node is None
    assert list(empty.GetSegmentation().GetSegmentIDs()) == list(get_label_set(TASK).keys)
    assert empty.GetAttribute("CardiacAI.Task") == TASK


def test_result_of_another_volume_is_refused(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    result = segment(ct_image, TASK, catalog=catalog, prefer_gpu=False)
    shifted = Image(ct_image.array, spacing=ct_image.spacing, origin=(0.0, 0.0, 0.0), modality="CT")
    other = _volume(scene, shifted, "Other CT")
    before = _node_ids(scene)
    with pytest.raises(InputError, match="not on the grid"):
        logic.apply(result, other)
    assert _node_ids(scene) == before


# -- background worker -----------------------------------------------------------------------------------


def test_background_run_reports_progress_to_one_and_leaves_scene_to_the_main_thread(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    volume = _volume(scene, ct_image)
    seen = []
    before = _node_ids(scene)
    job = logic.start(volume, TASK, prefer_gpu=False, listener=lambda f, m: seen.append(f))
    state = job.wait(60)
    assert state.status == worker.SUCCEEDED, state.message
    assert state.fraction == 1.0 and seen[-1] == 1.0
    assert seen == sorted(seen) and len(seen) >= 3
    assert _node_ids(scene) == before  # the worker thread never touched the scene
    expected = segment(ct_image, TASK, catalog=catalog, prefer_gpu=False)
    np.testing.assert_array_equal(state.result.labelmap.array, expected.labelmap.array)
    out = logic.apply(state.result, volume, show_3d=False)
    assert out.segmentation_node.GetScene() is scene and out.table_node.GetScene() is scene


def test_cancel_stops_the_run_and_leaves_the_scene_unchanged(catalog, ct_image, scene, monkeypatch):
    import CardiacAI.segmentation as segmentation_module

    # Windows of the training patch size (8 voxels) so the run has many windows to stop between.
    monkeypatch.setattr(segmentation_module, "MAX_INFERENCE_WINDOW", 8)
    logic = SegmentationLogic(scene, catalog)
    volume = _volume(scene, ct_image)
    before = _node_ids(scene)
    windows = []
    job_ready = threading.Event()
    jobs = []

    def listener(fraction, message):  # runs in the worker thread
        job_ready.wait(5)
        match = re.match(r"window (\d+)/(\d+)", message)
        if match:
            windows.append((int(match.group(1)), int(match.group(2))))
            if len(windows) == 2:
                jobs[0].cancel()  # the user clicks Cancel during the second window

    job = logic.start(volume, TASK, prefer_gpu=False, listener=listener)
    jobs.append(job)
    job_ready.set()
    state = job.wait(60)
    assert state.status == worker.CANCELLED
    assert isinstance(state.error, OperationCancelled) and state.result is None
    total = windows[0][1]
    assert total > 10 and len(windows) == 2  # stopped right after the cancel, not at the end
    assert state.fraction < 0.85
    assert _node_ids(scene) == before


def test_failed_run_reports_the_error_message(catalog, ct_image, scene):
    logic = SegmentationLogic(scene, catalog)
    job = logic.start(_volume(scene, ct_image), TASK, model_id="no-such-model", prefer_gpu=False)
    state = job.wait(60)
    assert state.status == worker.FAILED
    assert "no model 'no-such-model'" in state.message and "random-a" in state.message
    assert state.details == ""  # a CardiacAI error, not a bug: no traceback needed


def test_job_turns_an_unexpected_exception_into_a_failed_state():
    def broken(progress, cancel):
        progress(0.3, "half way")
        raise ZeroDivisionError("boom")

    state = worker.BackgroundJob(broken).start().wait(10)
    assert state.status == worker.FAILED and state.fraction == pytest.approx(0.3)
    assert "ZeroDivisionError: boom" in state.message and "Traceback" in state.details


def test_a_result_that_arrives_after_cancel_is_dropped():
    release = threading.Event()

    def slow(progress, cancel):
        release.wait(5)
        return "result"

    job = worker.BackgroundJob(slow).start()
    job.cancel()
    release.set()
    state = job.wait(10)
    assert state.status == worker.CANCELLED and state.result is None


# -- dependencies ------------------------------------------------------------------------------------------


class FakeInstaller:
    """Records what it is asked to install, and 'installs' it into the fake environment."""

    def __init__(self, installed: set[str]):
        self.installed = installed
        self.calls = []

    def install_torch(self):
        self.calls.append("torch")
        self.installed.add("torch")

    def install_packages(self, requirements):
        self.calls.append(list(requirements))
        self.installed.update(requirements)


@pytest.fixture()
def fake_environment(monkeypatch):
    """importlib.metadata sees every real distribution except monai and torch."""
    real_version = importlib.metadata.version
    installed: set[str] = set()
    hidden = {"monai", "torch"}

    def version(name):
        if name in hidden and name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    return installed


def test_dependency_check_reports_missing_packages(fake_environment):
    status = dependencies.check_dependencies()
    assert status.missing == ("monai",) and status.torch_missing and not status.ok
    text = status.describe()
    assert "PyTorch" in text and "monai" in text and "SimpleITK" not in text


def test_declined_installation_installs_nothing_and_says_so(fake_environment):
    installer = FakeInstaller(fake_environment)
    asked = []
    with pytest.raises(dependencies.DependencyError, match="declined; nothing was installed") as info:
        dependencies.ensure_dependencies(lambda text: asked.append(text) or False, installer)
    assert installer.calls == [] and len(asked) == 1 and "monai" in asked[0]
    assert "PyTorch, monai" in str(info.value)


def test_confirmed_installation_installs_only_what_is_missing(fake_environment):
    installer = FakeInstaller(fake_environment)
    status = dependencies.ensure_dependencies(lambda text: True, installer)
    assert status.ok and installer.calls == ["torch", ["monai"]]


def test_nothing_missing_asks_nothing(monkeypatch):
    def never(text):
        raise AssertionError("confirmation asked although nothing is missing")

    assert dependencies.ensure_dependencies(never, FakeInstaller(set())).ok


def test_still_missing_after_installation_is_an_error(fake_environment):
    class NoOpInstaller(FakeInstaller):
        def install_packages(self, requirements):
            self.calls.append(list(requirements))  # pip 'succeeded' but the package is not visible

    with pytest.raises(dependencies.DependencyError, match="monai still missing"):
        dependencies.ensure_dependencies(lambda text: True, NoOpInstaller(fake_environment))


def test_requirements_file_lists_cardiacai_dependencies_except_torch_and_numpy():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]} - {"torch", "numpy"}
    listed = [dependencies._name(r).lower() for r in dependencies.read_requirements()]
    assert sorted(listed) == sorted(expected)
    assert all(not re.search(r"[<>=~!]", r) for r in dependencies.read_requirements())  # unpinned


# -- the Slicer module file and its .ui --------------------------------------------------------------------


def _module_tree() -> ast.Module:
    return ast.parse((MODULE_DIR / "CardiacAISegment.py").read_text(), filename="CardiacAISegment.py")


def test_module_file_defines_the_four_slicer_classes():
    classes = {node.name: [ast.unparse(b) for b in node.bases] for node in _module_tree().body
               if isinstance(node, ast.ClassDef)}
    assert "ScriptedLoadableModule" in classes["CardiacAISegment"]
    assert "ScriptedLoadableModuleWidget" in classes["CardiacAISegmentWidget"]
    assert "ScriptedLoadableModuleLogic" in classes["CardiacAISegmentLogic"]
    assert "ScriptedLoadableModuleTest" in classes["CardiacAISegmentTest"]


def test_ui_file_is_valid_and_has_every_widget_the_code_uses():
    tree = ET.parse(MODULE_DIR / "Resources" / "UI" / "CardiacAISegment.ui")
    widgets = {w.get("name"): w.get("class") for w in tree.iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", (MODULE_DIR / "CardiacAISegment.py").read_text()))
    assert used, "the widget code uses no .ui widgets"
    assert sorted(used - set(widgets)) == []
    expected_classes = {
        "inputVolumeSelector": "qMRMLNodeComboBox", "outputSegmentationSelector": "qMRMLNodeComboBox",
        "wholeHeartButton": "QPushButton", "imaAortaButton": "QPushButton",
        "wholeHeartModelComboBox": "QComboBox", "imaAortaModelComboBox": "QComboBox",
        "useGpuCheckBox": "QCheckBox", "progressBar": "QProgressBar", "statusLabel": "QLabel",
        "cancelButton": "QPushButton", "measurementsTableView": "qMRMLTableView",
        "editSegmentationButton": "QPushButton", "manageModelsCollapsibleButton": "ctkCollapsibleButton",
    }
    for name, cls in expected_classes.items():
        assert widgets.get(name) == cls, (name, widgets.get(name))

    def node_types(name):
        widget = next(w for w in tree.iter("widget") if w.get("name") == name)
        prop = next(p for p in widget.findall("property") if p.get("name") == "nodeTypes")
        return [s.text for s in prop.iter("string")]

    assert node_types("inputVolumeSelector") == ["vtkMRMLScalarVolumeNode"]
    assert node_types("outputSegmentationSelector") == ["vtkMRMLSegmentationNode"]
    buttons = {w.get("name"): w.find("property[@name='text']/string").text for w in tree.iter("widget")
               if w.get("class") == "QPushButton"}
    assert buttons["wholeHeartButton"] == "Whole heart" and buttons["imaAortaButton"] == "IMA / aorta"
