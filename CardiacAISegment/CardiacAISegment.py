"""CardiacAISegment: one-click AI segmentation of cardiac CT in 3D Slicer.

This file holds only what needs the Slicer application (Qt widget, module registration, self-test).
The logic lives in :mod:`CardiacAISegmentLib` (headless-testable) and in the :mod:`CardiacAI`
package; see ``Testing/test_segment_module_logic.py``.
"""

import json
import logging

import qt
import slicer
from CardiacAISegmentLib.dependencies import (
    DependencyError,
    check_dependencies,
    ensure_dependencies,
)
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: (task, its button, its model combo box) in the .ui file.
TASK_WIDGETS = (
    ("whole-heart", "wholeHeartButton", "wholeHeartModelComboBox"),
    ("ima-aorta", "imaAortaButton", "imaAortaModelComboBox"),
)
LOGGER = logging.getLogger(__name__)
#: How often the widget reads the background job's progress (ms).
POLL_INTERVAL_MS = 150


#
# Module
#


class CardiacAISegment(ScriptedLoadableModule):
    """Module description shown in Slicer (title, category, help, acknowledgement)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CardiacAI Segment"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = []
        self.parent.contributors = ["CardiacAI developers"]
        self.parent.helpText = """
One-click AI segmentation of cardiac CT: the whole heart in 10 structures, or the internal mammary
arteries and the aorta with their perivascular regions. Select the CT, click a task; the result is a
segmentation (shown in slice and 3D views, ready for the Segment Editor) and a table of volumes (mL),
LV myocardial mass (g) and HU per structure. Existing segmentations are never overwritten without
asking, and a replaced segmentation can be restored.
"""
        self.parent.acknowledgementText = """
Whole-heart structures after the Dense V-Net whole-heart segmentation paper; internal mammary artery,
aorta and perivascular regions after the SE+Swin IMA/aorta paper. Built on MONAI, PyTorch and SimpleITK.
"""


#
# Widget
#


class CardiacAISegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel. Segmentation runs in a background thread (CardiacAISegmentLib.worker);
    a QTimer polls its progress so the GUI stays responsive, and results are applied here, on the
    main thread."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._job = None
        self._job_inputs = None
        self._last_output = None
        self._requirements_ok = False
        self._task_has_model = {}  # task -> False when the catalog offers no model for it
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll_job)

    # -- set-up -------------------------------------------------------------------------------------
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(self.resourcePath("UI/CardiacAISegment.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.logic = CardiacAISegmentLogic()

        for task, button_name, _combo in TASK_WIDGETS:
            getattr(self.ui, button_name).connect("clicked(bool)", lambda _checked, t=task: self.onTaskButton(t))
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.editSegmentationButton.connect("clicked(bool)", self.onEditSegmentation)
        self.ui.restorePreviousButton.connect("clicked(bool)", self.onRestorePrevious)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._update_buttons)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._update_buttons)
        self.ui.manageModelsCollapsibleButton.connect("contentsCollapsed(bool)", self._on_manage_models_toggled)
        self.ui.refreshModelsButton.connect("clicked(bool)", self._refresh_cached_models)
        self.ui.removeModelButton.connect("clicked(bool)", self.onRemoveModel)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)

        self.ui.progressBar.hide()
        self._refresh_environment()
        self._update_buttons()

    def cleanup(self):
        if self._job is not None:
            self._job.cancel()
        self._timer.stop()
        self.removeObservers()

    def onSceneStartClose(self, caller, event):
        # The job's result belongs to nodes that are about to disappear.
        if self._job is not None:
            self._job.cancel()
        self._last_output = None
        self.ui.measurementsTableView.setMRMLTableNode(None)

    def _dependencies_ok(self):
        """True when CardiacAI's requirements are installed (checked until they are, then remembered)."""
        if not self._requirements_ok:
            self._requirements_ok = check_dependencies().ok
        return self._requirements_ok

    def _refresh_environment(self):
        """Model lists and GPU check box; both need the requirements, which may not be installed yet."""
        if not self._dependencies_ok():
            for _task, _button, combo_name in TASK_WIDGETS:
                combo = getattr(self.ui, combo_name)
                combo.clear()
                combo.addItem("(default model)")
            self.ui.useGpuCheckBox.enabled = False
            self.ui.useGpuCheckBox.toolTip = ("PyTorch and CardiacAI's Python packages are installed (after asking) "
                                              "when you first click a task; the GPU is used if CUDA is present.")
            self._set_status("Click a task to segment. Missing Python packages will be installed first, after "
                             "you confirm.")
            return
        try:
            for task, button_name, combo_name in TASK_WIDGETS:
                combo = getattr(self.ui, combo_name)
                combo.clear()
                models = self.logic.lib.models(task)
                for index, entry in enumerate(models):
                    label = f"{entry.title} {entry.version}" + (" (default)" if index == 0 else "")
                    combo.addItem(label, json.dumps([entry.id, entry.version]))
                    combo.setItemData(index, entry.description or entry.title, qt.Qt.ToolTipRole)
                self._task_has_model[task] = bool(models)
                if not models:
                    combo.addItem("(no model installed for this task)")
                    getattr(self.ui, button_name).toolTip = "No model for this task in the model catalog yet."
        except Exception as exc:  # a broken catalog must not break the panel
            self._set_status(f"Model catalog problem: {exc}")
        available, reason = self.logic.lib.gpu_status()
        self.ui.useGpuCheckBox.enabled = available
        self.ui.useGpuCheckBox.checked = available
        self.ui.useGpuCheckBox.toolTip = reason
        self._update_buttons()

    # -- running ------------------------------------------------------------------------------------
    def onTaskButton(self, task):
        if self._job is not None:
            return
        volume = self.ui.inputVolumeSelector.currentNode()
        if volume is None:
            self._set_status("Select the CT volume to segment first.")
            return
        try:
            self._ensure_dependencies()
        except DependencyError as exc:
            self._show_error(exc)
            return
        output = self.ui.outputSegmentationSelector.currentNode()
        replace = False
        if output is not None and output.GetSegmentation().GetNumberOfSegments():
            replace = slicer.util.confirmYesNoDisplay(
                f"'{output.GetName()}' already holds {output.GetSegmentation().GetNumberOfSegments()} segment(s), "
                "perhaps corrected by hand. Replace them with the new result?\n\nThe current segments are kept "
                "in a hidden copy; 'Restore previous' brings them back.",
                windowTitle="CardiacAI: replace segmentation?")
            if not replace:
                self._set_status("Nothing done. Choose 'Create new segmentation' as output to keep both.")
                return
        model_id, version = self._selected_model(task)
        try:  # InputError (bad volume, transform), ModelError (catalog): nothing has started yet
            self._job = self.logic.lib.start(volume, task, model_id=model_id, version=version,
                                             prefer_gpu=self.ui.useGpuCheckBox.checked and
                                             self.ui.useGpuCheckBox.enabled,
                                             output_node=output, replace_existing=replace)
        except Exception as exc:
            self._show_error(exc)
            return
        self._job_inputs = (volume, output, replace)
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self._set_status("Starting…")
        self._update_buttons()
        self._timer.start()

    def _ensure_dependencies(self):
        """Install missing requirements after the user confirms (raises DependencyError otherwise)."""
        if self._dependencies_ok():
            return
        ensure_dependencies(lambda text: slicer.util.confirmOkCancelDisplay(
            text, windowTitle="CardiacAI: install Python packages?"))
        self._requirements_ok = True
        self._refresh_environment()

    def _selected_model(self, task):
        combo = getattr(self.ui, next(c for t, _b, c in TASK_WIDGETS if t == task))
        data = combo.currentData
        return tuple(json.loads(data)) if data else (None, None)

    def _poll_job(self):
        state = self._job.state()
        self.ui.progressBar.value = round(100 * state.fraction)
        if not state.finished:
            self._set_status(f"{state.message} ({state.elapsed_s:.0f} s)")
            return
        self._timer.stop()
        job, (volume, output, replace) = self._job, self._job_inputs
        self._job = self._job_inputs = None
        if state.status == "succeeded":
            try:
                result = self.logic.lib.apply(state.result, volume, output_node=output, replace_existing=replace)
            except Exception as exc:  # e.g. the volume was removed or changed while the job ran
                self._show_error(exc)
            else:
                self._show_result(result, state.elapsed_s)
        elif state.status == "cancelled":
            self._set_status("Cancelled; the scene is unchanged.")
        else:
            if state.details:
                LOGGER.error(state.details)
            self._show_error(state.message)
        self.ui.progressBar.hide()
        self._update_buttons()
        del job

    def _show_result(self, output, elapsed_s):
        self._last_output = output
        seg_node, table_node = output.segmentation_node, output.table_node
        self.ui.outputSegmentationSelector.setCurrentNode(seg_node)
        self.ui.measurementsTableView.setMRMLTableNode(table_node)
        absent = [m["name"] for m in output.result.measurements if not m["present"]]
        run = output.result.run
        text = (f"Done in {elapsed_s:.0f} s with {run['model']['id']} {run['model']['version']} on "
                f"{run['device_reason']}.")
        if absent:
            text += " Not found: " + ", ".join(absent) + " (see the table for why)."
        self._set_status(text)

    def onCancel(self):
        if self._job is not None:
            self._job.cancel()
            self._set_status("Cancelling after the current step…")

    # -- correcting -----------------------------------------------------------------------------------
    def onEditSegmentation(self):
        seg_node = self.ui.outputSegmentationSelector.currentNode()
        volume = self.ui.inputVolumeSelector.currentNode()
        if seg_node is None:
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(seg_node)
        if volume is not None:
            # Slicer >= 5.4 calls it the source volume; older versions the master volume.
            set_volume = getattr(editor, "setSourceVolumeNode", None) or editor.setMasterVolumeNode
            set_volume(volume)

    def onRestorePrevious(self):
        seg_node = self.ui.outputSegmentationSelector.currentNode()
        try:
            self.logic.lib.restore_previous(seg_node)
        except Exception as exc:
            self._show_error(exc)
        else:
            self._set_status(f"Restored the previous segments of '{seg_node.GetName()}'.")
        self._update_buttons()

    def _update_buttons(self, *_args):
        running = self._job is not None
        seg_node = self.ui.outputSegmentationSelector.currentNode()
        has_volume = self.ui.inputVolumeSelector.currentNode() is not None
        for task, button_name, combo_name in TASK_WIDGETS:
            getattr(self.ui, combo_name).enabled = not running
            getattr(self.ui, button_name).enabled = not running and has_volume and self._task_has_model.get(task, True)
        self.ui.cancelButton.enabled = running
        self.ui.editSegmentationButton.enabled = not running and seg_node is not None
        has_previous = (seg_node is not None and self.logic is not None and self._dependencies_ok()
                        and self.logic.lib.previous_node(seg_node) is not None)
        self.ui.restorePreviousButton.enabled = not running and has_previous

    # -- manage models ----------------------------------------------------------------------------------
    def _on_manage_models_toggled(self, collapsed):
        if not collapsed:
            self._refresh_cached_models()

    def _refresh_cached_models(self):
        self.ui.cachedModelsListWidget.clear()
        if not self._dependencies_ok():
            self.ui.modelsCacheLabel.text = "Models can be managed once CardiacAI's Python packages are installed."
            return
        from CardiacAI.models import models_cache_dir

        self.ui.modelsCacheLabel.text = f"Downloaded models are kept in {models_cache_dir()}"
        for cached in self.logic.lib.cached_models():
            item = qt.QListWidgetItem(f"{cached.model_id} {cached.version} ({cached.size_bytes / 1e6:.1f} MB)")
            item.setData(qt.Qt.UserRole, json.dumps([cached.model_id, cached.version]))
            self.ui.cachedModelsListWidget.addItem(item)

    def onRemoveModel(self):
        item = self.ui.cachedModelsListWidget.currentItem()
        if item is None:
            return
        model_id, version = json.loads(item.data(qt.Qt.UserRole))
        if not slicer.util.confirmYesNoDisplay(f"Delete the downloaded model {model_id} {version}? "
                                               "It is downloaded again when next used."):
            return
        try:
            self.logic.lib.remove_cached_model(model_id, version)
        except Exception as exc:
            self._show_error(exc)
        self._refresh_cached_models()

    # -- helpers ---------------------------------------------------------------------------------------
    def _set_status(self, text):
        self.ui.statusLabel.text = text

    def _show_error(self, error):
        """CardiacAI errors already say what is wrong and what to do: show them as they are."""
        self._set_status(f"Failed: {error}")
        slicer.util.errorDisplay(str(error), windowTitle="CardiacAI")


#
# Logic
#


class CardiacAISegmentLogic(ScriptedLoadableModuleLogic):
    """Slicer-facing logic: a thin wrapper over CardiacAISegmentLib.logic.SegmentationLogic on slicer.mrmlScene.

    ``lib`` is created on first use, because it imports CardiacAI's requirements (MONAI, PyTorch ...),
    which are installed on first use after the user confirms.
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._lib = None

    @property
    def lib(self):
        if self._lib is None:
            from CardiacAISegmentLib.logic import SegmentationLogic

            self._lib = SegmentationLogic(slicer.mrmlScene)
        return self._lib

    def segment(self, volume_node, task="whole-heart", **options):
        """Segment synchronously (scripts, batch): returns CardiacAISegmentLib.logic.SegmentationOutput."""
        return self.lib.segment_volume(volume_node, task, **options)


#
# Self-test
#


class CardiacAISegmentTest(ScriptedLoadableModuleTest):
    """One-click segmentation of a sample cardiac CT inside Slicer (Reload and Test)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_one_click_whole_heart()

    def _sample_volume(self):
        """Slicer's CTACardio sample; offline, a generated CT from CardiacAI.synthetic."""
        try:
            import SampleData

            volume = SampleData.SampleDataLogic().downloadSample("CTACardio")
            if volume is not None:
                return volume
        except Exception as exc:  # no network, or the sample server is down
            LOGGER.warning(f"CTACardio sample not available ({exc}); using a generated CT")
        from CardiacAI.slicer_bridge import volume_node_from_image
        from CardiacAI.synthetic import GeneratorConfig, generate_case

        case = generate_case(7, GeneratorConfig(spacing_mm=(1.5, 1.5, 1.5), fov="cardiac"))
        volume = volume_node_from_image(case.image, slicer.mrmlScene, "Synthetic CTA")
        volume.CreateDefaultDisplayNodes()
        return volume

    def test_one_click_whole_heart(self):
        self.delayDisplay("Checking Python requirements")
        ensure_dependencies(lambda text: slicer.util.confirmOkCancelDisplay(text))
        from CardiacAI.labels import get_label_set

        self.delayDisplay("Loading a sample cardiac CT")
        volume = self._sample_volume()
        logic = CardiacAISegmentLogic()
        if not logic.lib.models("whole-heart"):
            self.fail("the model catalog has no whole-heart model: nothing to test the one-click segmentation with")

        self.delayDisplay("Segmenting (one click)")
        fractions = []
        output = logic.segment(volume, "whole-heart", progress=lambda fraction, message: fractions.append(fraction))
        self.assertEqual(fractions[-1], 1.0)
        label_set = get_label_set("whole-heart")
        seg_node = output.segmentation_node
        self.assertEqual(list(seg_node.GetSegmentation().GetSegmentIDs()), list(label_set.keys))
        self.assertTrue(seg_node.GetSegmentation().ContainsRepresentation("Closed surface"))
        self.assertEqual(seg_node.GetNodeReferenceID("referenceImageGeometryRef"), volume.GetID())
        self.assertEqual(output.table_node.GetNumberOfRows(), len(label_set))
        found = [m["name"] for m in output.result.measurements if m["present"]]
        self.delayDisplay(f"Found {len(found)} of {len(label_set)} structures: {', '.join(found)}")

        self.delayDisplay("Running again never overwrites the first result")
        second = logic.segment(volume, "whole-heart")
        self.assertNotEqual(second.segmentation_node.GetID(), seg_node.GetID())
        self.delayDisplay("Test passed")
