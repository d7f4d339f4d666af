"""Headless logic of the CardiacAISegment module: a thin adapter from MRML nodes to :mod:`CardiacAI`.

:class:`SegmentationLogic` turns a CT ``vtkMRMLScalarVolumeNode`` into

* a ``vtkMRMLSegmentationNode`` with one named, coloured, SNOMED-coded segment per structure of
  the task's label set (:func:`CardiacAI.slicer_bridge.segmentation_node_from_labelmap`), its
  reference image geometry taken from the input volume
  (``SetReferenceImageGeometryParameterFromVolumeNode``), default display nodes and a closed
  surface representation for the 3D view, ready for the Segment Editor; and
* a ``vtkMRMLTableNode`` of measurements (:data:`MEASUREMENT_COLUMNS`): volume (mL), LV
  myocardial mass (g), HU mean and SD, present/absent with the reason.

The segmentation itself is :func:`CardiacAI.segmentation.segment`, unchanged: the label map in
the node equals the one ``segment`` returns for the same image and model.

Clinicians' edits are never overwritten silently. By default every run creates a new
segmentation node. Writing into an existing node that has segments needs an explicit
``replace_existing=True``; its previous segments are then kept in a hidden copy (referenced from
the node as ``CardiacAI.Previous``) that :meth:`SegmentationLogic.restore_previous` brings back.

Nothing here imports Qt, CTK, ``slicer.app`` or ``slicer.modules``; it runs with the headless
``slicer-core`` wheel and unchanged inside Slicer. Scene changes happen only in the calling
(main) thread; background runs (:meth:`SegmentationLogic.start`) work on a copy of the voxels.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from typing import Any

import slicer
import vtk

from CardiacAI.errors import InputError
from CardiacAI.image import Image
from CardiacAI.segmentation import TASKS, SegmentationResult, segment
from CardiacAI.slicer_bridge import (
    TASK_ATTRIBUTE,
    image_from_volume_node,
    segmentation_node_from_labelmap,
)

from .worker import BackgroundJob, ProgressCallback

#: Title of each task, as on the module's buttons and in node names.
TASK_TITLES = {"whole-heart": "Whole heart", "ima-aorta": "IMA / aorta"}
#: Node reference from a segmentation node to the hidden copy of its previous segments.
PREVIOUS_REFERENCE = "CardiacAI.Previous"
#: Node reference from a segmentation node to its measurements table.
MEASUREMENTS_REFERENCE = "CardiacAI.Measurements"
#: Node attribute holding the provenance of the run (model, device, timings) as JSON.
RUN_ATTRIBUTE = "CardiacAI.Run"
#: Node attribute marking a hidden copy: the ID of the node it was taken from.
BACKUP_OF_ATTRIBUTE = "CardiacAI.BackupOf"

#: Columns of the measurements table: (name, VTK array type, unit, description). One row per
#: structure of the label set, in label-value order. Numbers that do not apply (mass of any
#: structure but the LV myocardium, HU of an empty structure) are NaN.
MEASUREMENT_COLUMNS = (
    ("Structure", "string", "", "Structure name (CardiacAI label set)"),
    ("Key", "string", "", "Structure key; also the segment ID"),
    ("Label", "int", "", "Label value in the task's label map"),
    ("Present", "string", "", "'yes' when the structure was found, else 'no'"),
    ("Reason", "string", "", "Why the structure is reported absent (empty when present)"),
    ("Volume (mL)", "double", "mL", "Segmented volume: voxel count x voxel volume"),
    ("LV mass (g)", "double", "g", "Left ventricular myocardial mass at 1.05 g/mL (LV myocardium row only)"),
    ("HU mean", "double", "HU", "Mean CT number of the input CT inside the structure"),
    ("HU SD", "double", "HU", "Standard deviation of the CT number inside the structure"),
)


@dataclasses.dataclass
class SegmentationOutput:
    """Nodes a run produced in the scene.

    Attributes
    ----------
    segmentation_node: the ``vtkMRMLSegmentationNode`` holding the result.
    table_node: the measurements ``vtkMRMLTableNode`` (:data:`MEASUREMENT_COLUMNS`).
    previous_node: hidden copy of the segments the run replaced, or None when nothing was replaced.
    result: the :class:`CardiacAI.segmentation.SegmentationResult` (label map, presence, provenance).
    """

    segmentation_node: Any
    table_node: Any
    previous_node: Any
    result: SegmentationResult


class SegmentationLogic:
    """Segment CT volume nodes of a MRML scene with CardiacAI models.

    Parameters
    ----------
    scene: the ``vtkMRMLScene`` (``slicer.mrmlScene`` in Slicer, ``slicer.vtkMRMLScene()`` headless).
    catalog: a :class:`CardiacAI.models.ModelCatalog`; default the packaged catalog, loaded on
        first use.
    """

    def __init__(self, scene, catalog=None) -> None:
        self.scene = scene
        self._catalog = catalog
        # Segmentations copy the factory's conversion rules when created: register before any node.
        _ensure_closed_surface_converter()

    # -- models and device ------------------------------------------------------------------------
    @property
    def catalog(self):
        """The model catalog (loaded on first use). Raises ModelError for a broken catalog."""
        if self._catalog is None:
            from CardiacAI.models import ModelCatalog

            self._catalog = ModelCatalog.load()
        return self._catalog

    def models(self, task: str) -> list:
        """The models offered for ``task``: non-hidden catalog entries, the task's default first.

        Returns a list of :class:`CardiacAI.models.ModelEntry` (empty when the catalog has none).
        Raises InputError for an unknown task.
        """
        _check_task(task)
        entries = [e for e in self.catalog.models(task) if not e.hidden]
        if not entries:
            return []
        default = self.catalog.default_for(task)
        return [default] + [e for e in entries if (e.id, e.version) != (default.id, default.version)]

    @staticmethod
    def gpu_status() -> tuple[bool, str]:
        """(CUDA usable, sentence saying which device runs and why) for the "Use GPU" check box."""
        from CardiacAI.inference import choose_device

        device = choose_device(prefer_gpu=True)
        if device.device == "cuda":
            return True, f"Runs on the {device.reason} with mixed precision; untick to use the CPU."
        return False, f"Runs on the {device.reason}."

    @staticmethod
    def cached_models(cache_dir=None) -> list:
        """Downloaded model versions (:class:`CardiacAI.models.CachedModel`) in the user cache."""
        from CardiacAI.models import list_cached

        return list_cached(cache_dir)

    @staticmethod
    def remove_cached_model(model_id: str, version: str | None = None, cache_dir=None) -> list:
        """Delete a downloaded model version (all versions when None); returns the removed folders."""
        from CardiacAI.models import remove_cached

        return remove_cached(model_id, version, cache_dir)

    # -- running ------------------------------------------------------------------------------------
    def image_from_volume(self, volume_node) -> Image:
        """A copy of the volume node's voxels and geometry as an Image (HU, LPS, axes (k, j, i)).

        Raises InputError for a missing/empty node, a non-scalar volume or a volume under a
        transform (the bridge's checks).
        """
        if volume_node is None:
            raise InputError("no input volume is selected", "select the CT volume to segment")
        image = image_from_volume_node(volume_node)
        storage = volume_node.GetStorageNode()
        source = storage.GetFileName() if storage is not None and storage.GetFileName() else volume_node.GetName()
        image.metadata.setdefault("source_path", source)
        return image

    def check_output(self, output_node, replace_existing: bool) -> None:
        """Refuse to write into a segmentation that has segments unless replacing was chosen.

        Raises InputError when ``output_node`` holds segments and ``replace_existing`` is False.
        """
        if output_node is None or replace_existing:
            return
        count = output_node.GetSegmentation().GetNumberOfSegments()
        if count:
            raise InputError(
                f"the segmentation '{output_node.GetName()}' already holds {count} segment(s), "
                "possibly corrected by hand",
                "choose 'Create new segmentation' as output, or confirm the replacement: its current "
                "segments are then kept in a hidden copy that 'Restore previous' brings back",
            )

    def start(self, volume_node, task: str, *, model_id: str | None = None, version: str | None = None,
              prefer_gpu: bool = True, output_node=None, replace_existing: bool = False,
              listener: ProgressCallback | None = None) -> BackgroundJob:
        """Start segmenting ``volume_node`` in a background thread; the scene is not touched.

        The volume is copied now (main thread); the job runs :func:`CardiacAI.segmentation.segment`
        and its result (a SegmentationResult) is applied with :meth:`apply` once
        ``job.state().status == "succeeded"``. Output checks run before starting, so a refused
        output costs no computing time.

        Raises InputError (bad input or output, unknown task) before any thread starts.
        """
        _check_task(task)
        self.check_output(output_node, replace_existing)
        image = self.image_from_volume(volume_node)
        catalog = self.catalog

        def work(progress, cancel: threading.Event):
            return segment(image, task, model_id=model_id, version=version, catalog=catalog,
                           prefer_gpu=prefer_gpu, progress=progress, cancel=cancel)

        return BackgroundJob(work, name=f"CardiacAI {task} segmentation", listener=listener).start()

    def segment_volume(self, volume_node, task: str, *, model_id: str | None = None, version: str | None = None,
                       prefer_gpu: bool = True, output_node=None, replace_existing: bool = False,
                       show_3d: bool = True, progress: ProgressCallback | None = None,
                       cancel: threading.Event | None = None) -> SegmentationOutput:
        """Segment ``volume_node`` in the calling thread and add the result to the scene.

        For scripts, batch use and the self-test; the module's GUI uses :meth:`start`.
        Raises InputError, ModelError or OperationCancelled as :func:`CardiacAI.segmentation.segment`.
        """
        _check_task(task)
        self.check_output(output_node, replace_existing)
        image = self.image_from_volume(volume_node)
        result = segment(image, task, model_id=model_id, version=version, catalog=self.catalog,
                         prefer_gpu=prefer_gpu, progress=progress, cancel=cancel)
        return self.apply(result, volume_node, output_node=output_node, replace_existing=replace_existing,
                          show_3d=show_3d)

    # -- results into the scene -------------------------------------------------------------------
    def apply(self, result: SegmentationResult, volume_node, *, output_node=None, replace_existing: bool = False,
              show_3d: bool = True) -> SegmentationOutput:
        """Put a segmentation result into the scene (main thread only).

        Parameters
        ----------
        result: from :func:`CardiacAI.segmentation.segment` on ``volume_node``'s voxels.
        volume_node: the input CT; it becomes the reference geometry of the segmentation.
        output_node: None (default) to create a new segmentation node; or an existing one, which
            is filled when empty and otherwise replaced only with ``replace_existing`` (its
            previous segments are kept in a hidden copy, see :meth:`restore_previous`).
        show_3d: create the closed surface representation so the 3D view shows the structures.

        Raises
        ------
        InputError: ``output_node`` has segments and ``replace_existing`` is False; or the result
            does not lie on the volume's grid (it was computed for another volume).
        """
        self.check_output(output_node, replace_existing)
        if not _on_grid_of(result.labelmap, volume_node):
            raise InputError(f"the segmentation result is not on the grid of volume '{volume_node.GetName()}'",
                             "run the segmentation again on this volume")
        name = f"{volume_node.GetName()} {TASK_TITLES[result.task].lower()}"
        previous = None
        if output_node is None:
            seg_node = segmentation_node_from_labelmap(result.labelmap, result.label_set, self.scene,
                                                       self.scene.GenerateUniqueName(name),
                                                       reference_volume_node=volume_node)
        else:
            seg_node = output_node
            if seg_node.GetSegmentation().GetNumberOfSegments():
                previous = self._keep_hidden_copy(seg_node)
            self._fill(seg_node, result, volume_node)
        seg_node.SetAttribute(RUN_ATTRIBUTE, json.dumps(result.run, default=str))
        self._show(seg_node, volume_node, show_3d)
        table = self.measurements_table(result, seg_node)
        seg_node.SetNodeReferenceID(MEASUREMENTS_REFERENCE, table.GetID())
        return SegmentationOutput(seg_node, table, previous, result)

    def measurements_table(self, result: SegmentationResult, seg_node=None):
        """A new ``vtkMRMLTableNode`` of the result's measurements (:data:`MEASUREMENT_COLUMNS`).

        One row per structure of the label set in label-value order; column unit labels and
        descriptions set. Named after ``seg_node`` when given.
        """
        base = seg_node.GetName() if seg_node is not None else f"CardiacAI {result.task}"
        table_node = slicer.vtkMRMLTableNode()
        table_node.SetName(self.scene.GenerateUniqueName(f"{base} measurements"))
        self.scene.AddNode(table_node)
        arrays = []
        for column, kind, _unit, _description in MEASUREMENT_COLUMNS:
            array = {"string": vtk.vtkStringArray, "int": vtk.vtkIntArray, "double": vtk.vtkDoubleArray}[kind]()
            array.SetName(column)
            arrays.append(array)
        for row in result.measurements:
            values = (row["name"], row["key"], int(row["value"]), "yes" if row["present"] else "no",
                      row["reason"] or "", row["volume_ml"], row["mass_g"], row["hu_mean"], row["hu_sd"])
            for array, value, (_, kind, _, _) in zip(arrays, values, MEASUREMENT_COLUMNS):
                if kind == "double":
                    array.InsertNextValue(math.nan if value is None else float(value))
                else:
                    array.InsertNextValue(value)
        table = table_node.GetTable()
        for array in arrays:
            table.AddColumn(array)
        for column, _kind, unit, description in MEASUREMENT_COLUMNS:
            if unit:
                table_node.SetColumnUnitLabel(column, unit)
            table_node.SetColumnDescription(column, description)
        table_node.SetUseColumnTitleAsColumnHeader(True)
        table_node.SetLocked(True)  # derived numbers: edits in the table view would not mean anything
        if seg_node is not None:
            table_node.SetAttribute("CardiacAI.Segmentation", seg_node.GetID())
        return table_node

    # -- a way back -----------------------------------------------------------------------------------
    def previous_node(self, seg_node):
        """The hidden copy of the segments a run replaced in ``seg_node``, or None."""
        return seg_node.GetNodeReference(PREVIOUS_REFERENCE) if seg_node is not None else None

    def restore_previous(self, seg_node) -> None:
        """Bring back the segments a run replaced in ``seg_node`` (undo of one replacement).

        The hidden copy is moved back into ``seg_node`` and removed from the scene; an older copy
        (from an earlier replacement) becomes the next one to restore.

        Raises InputError when ``seg_node`` has no previous segments.
        """
        backup = self.previous_node(seg_node)
        if backup is None:
            raise InputError(f"segmentation '{seg_node.GetName()}' has no previous segments to restore",
                             "only segments replaced by a CardiacAI run can be restored")
        seg_node.GetSegmentation().DeepCopy(backup.GetSegmentation())
        _copy_attributes(backup, seg_node, keep=(TASK_ATTRIBUTE, RUN_ATTRIBUTE))
        older = backup.GetNodeReferenceID(PREVIOUS_REFERENCE)
        seg_node.SetNodeReferenceID(PREVIOUS_REFERENCE, older)
        self.scene.RemoveNode(backup)

    # -- helpers --------------------------------------------------------------------------------------
    def _keep_hidden_copy(self, seg_node):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        backup = slicer.vtkMRMLSegmentationNode()
        backup.SetName(self.scene.GenerateUniqueName(f"{seg_node.GetName()} (before CardiacAI {stamp})"))
        self.scene.AddNode(backup)
        backup.GetSegmentation().DeepCopy(seg_node.GetSegmentation())
        _copy_attributes(seg_node, backup, keep=(TASK_ATTRIBUTE, RUN_ATTRIBUTE))
        backup.SetAttribute(BACKUP_OF_ATTRIBUTE, seg_node.GetID())
        # Chain older copies so that several replacements can be undone one by one.
        backup.SetNodeReferenceID(PREVIOUS_REFERENCE, seg_node.GetNodeReferenceID(PREVIOUS_REFERENCE))
        backup.CreateDefaultDisplayNodes()
        backup.GetDisplayNode().SetVisibility(False)
        seg_node.SetNodeReferenceID(PREVIOUS_REFERENCE, backup.GetID())
        return backup

    def _fill(self, seg_node, result: SegmentationResult, volume_node) -> None:
        # Build the segments with the bridge in a scratch scene, then copy them into the node so
        # its ID, display settings and references (e.g. in the Segment Editor) stay as they are.
        scratch = slicer.vtkMRMLScene()
        try:
            built = segmentation_node_from_labelmap(result.labelmap, result.label_set, scratch, seg_node.GetName())
            seg_node.GetSegmentation().DeepCopy(built.GetSegmentation())
        finally:
            scratch.Clear(1)
        seg_node.SetAttribute(TASK_ATTRIBUTE, result.label_set.task)
        seg_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)

    @staticmethod
    def _show(seg_node, volume_node, show_3d: bool) -> None:
        seg_node.CreateDefaultDisplayNodes()
        seg_node.GetDisplayNode().SetVisibility(True)
        if show_3d:
            seg_node.CreateClosedSurfaceRepresentation()


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"unknown segmentation task '{task}'", f"choose one of: {', '.join(TASKS)}")


def _copy_attributes(source, target, keep) -> None:
    for name in keep:
        value = source.GetAttribute(name)
        if value is None:
            target.RemoveAttribute(name)
        else:
            target.SetAttribute(name, value)


def _on_grid_of(labelmap: Image, volume_node) -> bool:
    """True when the label map has the volume node's voxel grid (size and IJK-to-RAS), without copying voxels."""
    import numpy as np

    image_data = volume_node.GetImageData()
    if image_data is None:
        return False
    extent = image_data.GetExtent()
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    # A non-zero extent start shifts voxel (0, 0, 0), as image_from_volume_node accounts for.
    ijk_to_ras[:3, 3] = (ijk_to_ras @ np.array([extent[0], extent[2], extent[4], 1.0]))[:3]
    size = tuple(extent[2 * a + 1] - extent[2 * a] + 1 for a in range(3))
    return size == tuple(labelmap.shape_ijk) and np.allclose(ijk_to_ras, labelmap.ijk_to_ras, atol=1e-4)


def _ensure_closed_surface_converter() -> None:
    """Register the labelmap -> closed surface rule when nothing has (headless ``slicer-core``).

    Inside Slicer the Segmentations module registers its conversion rules at start-up; the
    headless wheel registers none, and closed surfaces (the 3D view's representation) then
    cannot be made. The rule is only added when no rule produces closed surfaces yet. Each
    segmentation copies the rules when it is created, so this must run before nodes are made.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    rules = factory.GetConverterRules()
    for index in range(len(rules)):
        rule = rules[index]
        if rule.GetSourceRepresentationName() == "Binary labelmap" and \
                rule.GetTargetRepresentationName() == "Closed surface":
            return
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
