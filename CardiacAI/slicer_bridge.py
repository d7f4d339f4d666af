"""Bridge between CardiacAI images / label sets and 3D Slicer MRML nodes.

Works headless with the ``slicer-core`` wheel (``pip install CardiacAI[slicer]``: MRML scene,
volume and segmentation nodes, storage nodes, segmentation logic) and unchanged inside the 3D
Slicer application; it uses only MRML/VTK classes, never ``slicer.app``, ``slicer.modules``,
Qt or CTK.

Conventions
-----------
* :class:`~CardiacAI.image.Image` is LPS with numpy axes (k, j, i); MRML nodes are RAS with an
  IJK-to-RAS matrix. The conversion is done by :mod:`CardiacAI.coordinates` only, so a node's
  ``GetIJKToRASMatrix`` equals ``image.ijk_to_ras``.
* Voxel arrays are copied, never shared, and keep their dtype (bool and float16 are refused,
  VTK has no such scalar types).
* Segmentations hold one segment per structure of the label set: segment ID = structure key,
  segment name, colour, label value and a ``TerminologyEntry`` tag in Slicer's serialisation
  (:meth:`CardiacAI.labels.Structure.terminology_entry`). All segments share one binary
  labelmap layer, as Slicer does for non-overlapping segments.
* Absent structures: a structure with no voxel is **kept** as an empty segment, tagged
  ``CardiacAI.StructureAbsent = true`` when created, so that files always list every structure
  of the task in the same order and the absence is visible in Slicer.
  :func:`absent_structures` reports absence from the voxel data itself (authoritative after
  manual editing).
* Overlaps when converting a segmentation back to a label map (possible when a user edits
  segments into separate layers): segments are painted in the segmentation's segment order and
  a later segment overwrites an earlier one, the rule of Slicer's own "export to labelmap"; the
  number of overwritten voxels is reported in ``metadata["overlapping_voxels"]``.
* Node geometry for left-handed grids: Slicer's volume file reader re-indexes a grid whose
  IJK-to-RAS matrix has a negative determinant into a right-handed one (same voxels at the same
  physical points, flipped slice order); CT read by :func:`CardiacAI.io.read_image` is
  right-handed, and :func:`labelmap_from_segmentation_node` resamples to the reference grid, so
  label maps always come back on the caller's grid.

All file writes go through :func:`CardiacAI.io.atomic.atomic_output`.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

try:
    import slicer  # MRML classes only: slicer-core wheel, or the Slicer application's module
    import vtk
    from vtk.util import numpy_support
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "CardiacAI.slicer_bridge needs 3D Slicer's MRML Python classes: run it inside 3D Slicer "
        "or install the headless wheel with 'pip install CardiacAI[slicer]' (slicer-core)"
    ) from exc

from .coordinates import grid_from_ijk_to_ras
from .errors import InputError, UnsupportedFormatError
from .image import Image
from .io.atomic import atomic_output, full_suffix
from .labels import LabelSet, Structure, parse_terminology_entry

#: Node attribute names used to carry Image fields that MRML has no place for.
MODALITY_ATTRIBUTE = "CardiacAI.Modality"
METADATA_ATTRIBUTE = "CardiacAI.Metadata"
TASK_ATTRIBUTE = "CardiacAI.Task"
#: Segment tags written by :func:`segmentation_node_from_labelmap`.
KEY_TAG = "CardiacAI.Key"
ABSENT_TAG = "CardiacAI.StructureAbsent"

SEGMENTATION_WRITE_SUFFIXES = (".seg.nrrd", ".nrrd")
SEGMENTATION_READ_SUFFIXES = (".seg.nrrd", ".nrrd", ".nii.gz", ".nii")
#: Single-file volume formats (detached headers such as .nhdr/.mhd cannot be written atomically).
VOLUME_WRITE_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha")
VOLUME_READ_SUFFIXES = (".nrrd", ".nhdr", ".nii.gz", ".nii", ".mha", ".mhd")

_BINARY_LABELMAP = "Binary labelmap"


# -- small VTK helpers -------------------------------------------------------------------------


def _vtk_matrix(matrix: np.ndarray) -> "vtk.vtkMatrix4x4":
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def _numpy_matrix(matrix: "vtk.vtkMatrix4x4") -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_image(array: np.ndarray, what: str) -> "vtk.vtkImageData":
    """Deep copy of a (k, j, i) numpy array into a single-component vtkImageData, same dtype."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.bool_ or array.dtype == np.float16 or array.dtype.kind not in "iuf":
        raise InputError(
            f"{what} has voxel type {array.dtype}, which Slicer volumes cannot hold",
            "convert it first (e.g. array.astype(numpy.uint8) for a mask, float32 for float16)",
        )
    k, j, i = array.shape
    image = vtk.vtkImageData()
    image.SetDimensions(i, j, k)
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True,
                                         array_type=numpy_support.get_vtk_array_type(array.dtype))
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def _numpy_array(image: "vtk.vtkImageData") -> np.ndarray:
    """Copy of a vtkImageData's scalars as a numpy array with axes (k, j, i)."""
    i, j, k = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k, j, i).copy()


def _oriented_image(array: np.ndarray, ijk_to_ras: np.ndarray) -> "slicer.vtkOrientedImageData":
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(_vtk_image(array, "the label map"))
    image.SetImageToWorldMatrix(_vtk_matrix(ijk_to_ras))
    return image


@contextlib.contextmanager
def _captured_vtk_messages() -> Iterator["vtk.vtkStringOutputWindow"]:
    """Collect VTK/MRML error text instead of printing it; we raise our own error instead."""
    window = vtk.vtkStringOutputWindow()
    previous_window = vtk.vtkOutputWindow.GetInstance()
    previous_verbosity = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkOutputWindow.SetInstance(window)
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        yield window
    finally:
        vtk.vtkOutputWindow.SetInstance(previous_window)
        vtk.vtkLogger.SetStderrVerbosity(previous_verbosity)


def _storage_details(storage_node, window) -> str:
    """The storage node's user messages (or captured VTK errors), for an error message."""
    text = ""
    if hasattr(storage_node, "GetUserMessages") and storage_node.GetUserMessages() is not None:
        text = storage_node.GetUserMessages().GetAllMessagesAsString().strip()
    if not text:
        text = window.GetOutput().strip()
    lines = [line.strip(" -") for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-3:])


def _check_suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    suffix = full_suffix(path)
    if suffix not in allowed:
        raise UnsupportedFormatError(
            f"cannot {what} '{path.name}': extension '{suffix or '(none)'}' is not supported",
            f"use one of {', '.join(allowed)}",
        )
    return suffix


def _check_readable(path: Path, suffix: str) -> None:
    """Refuse a missing, damaged or truncated file before a Slicer storage node sees it.

    Slicer's segmentation reader aborts the whole process (uncaught ITK exception) on a damaged
    or truncated NRRD, and ITK reads a truncated NIfTI without complaint, so NRRD/MetaImage
    files are test-read with SimpleITK (whose ITK errors are Python exceptions) and NIfTI files
    are checked to hold all the voxel bytes their header announces.
    """
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file", "check the path")
    damaged = InputError(f"{path.name} is damaged or incomplete",
                         "copy or export the file again (an interrupted transfer truncates it)")
    if suffix in (".nii", ".nii.gz"):
        import gzip
        import zlib

        import nibabel

        try:
            header = nibabel.load(str(path)).header
            voxel_bytes = int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
            needed = int(header.get_data_offset()) + voxel_bytes
            if suffix == ".nii":
                size = path.stat().st_size
            else:
                size = 0
                with gzip.open(path, "rb") as stream:
                    while chunk := stream.read(1 << 22):
                        size += len(chunk)
        except (EOFError, OSError, ValueError, zlib.error, nibabel.filebasedimages.ImageFileError):
            raise damaged from None
        if size < needed:
            raise damaged
    else:
        import SimpleITK as sitk

        try:
            sitk.ReadImage(str(path))
        except RuntimeError:
            raise damaged from None


def _check_no_parent_transform(node, what: str) -> None:
    if node.GetParentTransformNode() is not None:
        raise InputError(
            f"{what} '{node.GetName()}' is under a transform, so its voxel grid is not where "
            "its IJK-to-RAS matrix says",
            "harden the transform (Data module, right-click, Harden transform) and try again",
        )


# -- volumes -----------------------------------------------------------------------------------


def volume_node_from_image(image: Image, scene, name: str = "Volume", *, labelmap: bool = False):
    """Add a volume node holding a copy of ``image`` to ``scene``.

    Parameters
    ----------
    image: Image, array (k, j, i), LPS geometry (mm). Any integer or float32/64 dtype.
    scene: ``vtkMRMLScene`` (e.g. ``slicer.vtkMRMLScene()`` headless, ``slicer.mrmlScene`` in Slicer).
    name: node name.
    labelmap: create a ``vtkMRMLLabelMapVolumeNode`` (for label maps) instead of a
        ``vtkMRMLScalarVolumeNode``.

    Returns
    -------
    The new node; its voxel array equals ``image.array`` (same dtype) and its
    ``GetIJKToRASMatrix`` equals ``image.ijk_to_ras``. Modality and JSON-serialisable metadata
    are stored in the node attributes ``CardiacAI.Modality`` / ``CardiacAI.Metadata`` (other
    metadata values are stored as their ``str``). No display node is created (in the Slicer
    application call ``node.CreateDefaultDisplayNodes()``).

    Raises
    ------
    InputError: bool or float16 voxel type.
    """
    vtk_image = _vtk_image(image.array, f"image '{name}'")
    node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    node.SetAndObserveImageData(vtk_image)
    node.SetIJKToRASMatrix(_vtk_matrix(image.ijk_to_ras))
    if image.modality:
        node.SetAttribute(MODALITY_ATTRIBUTE, image.modality)
    if image.metadata:
        node.SetAttribute(METADATA_ATTRIBUTE, json.dumps(image.metadata, default=str))
    scene.AddNode(node)
    return node


def image_from_volume_node(node) -> Image:
    """Copy a scalar (or label map) volume node into an :class:`~CardiacAI.image.Image`.

    Returns an Image with array (k, j, i) copied with its dtype, spacing/origin/direction (LPS,
    mm) from the node's IJK-to-RAS matrix, modality and metadata from the node attributes
    written by :func:`volume_node_from_image` (empty when absent).

    Raises
    ------
    InputError: the node has no voxels, several components per voxel (RGB/vector), a parent
        transform, or a sheared grid.
    """
    name = node.GetName()
    image_data = node.GetImageData()
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise InputError(f"volume '{name}' has no voxel data", "load or compute the volume first")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(
            f"volume '{name}' has {image_data.GetNumberOfScalarComponents()} components per voxel",
            "use a scalar volume (convert colour or vector volumes first)",
        )
    _check_no_parent_transform(node, "volume")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = _numpy_matrix(matrix)
    extent_start = np.array(image_data.GetExtent()[::2], dtype=float)
    if np.any(extent_start != 0):
        # The image data may start at a non-zero index (e.g. after cropping): shift the origin.
        ijk_to_ras[:3, 3] = (ijk_to_ras @ np.append(extent_start, 1.0))[:3]
    try:
        spacing, origin, direction = grid_from_ijk_to_ras(ijk_to_ras)
    except ValueError as exc:
        raise InputError(f"volume '{name}' has a degenerate geometry: {exc}") from None
    metadata: dict[str, Any] = {}
    stored = node.GetAttribute(METADATA_ATTRIBUTE)
    if stored:
        with contextlib.suppress(ValueError):
            metadata = json.loads(stored)
    return Image(
        array=_numpy_array(image_data),
        spacing=spacing,
        origin=origin,
        direction=direction,
        modality=node.GetAttribute(MODALITY_ATTRIBUTE) or "",
        metadata=metadata if isinstance(metadata, dict) else {},
    )


# -- segmentations -----------------------------------------------------------------------------


def segmentation_node_from_labelmap(labelmap: Image, label_set: LabelSet, scene, name: str = "Segmentation",
                                    *, reference_volume_node=None):
    """Add a segmentation node with one segment per structure of ``label_set`` to ``scene``.

    Parameters
    ----------
    labelmap: Image whose integer array (k, j, i) holds label values of ``label_set`` (0 =
        background), on any LPS grid.
    label_set: the task's :class:`~CardiacAI.labels.LabelSet`.
    scene: ``vtkMRMLScene``.
    name: node name.
    reference_volume_node: the CT volume node; when given, the segmentation's reference image
        geometry (needed for DICOM SEG export and for resampling in Slicer) is taken from it and
        the node is referenced, as Slicer's ``SetReferenceImageGeometryParameterFromVolumeNode``
        does. Otherwise the label map's own grid is the reference geometry.

    Returns
    -------
    ``vtkMRMLSegmentationNode``: segments in label-value order, segment ID = key, name, colour,
    label value, ``TerminologyEntry`` and ``CardiacAI.Key`` tags, ``CardiacAI.StructureAbsent``
    = "true" for structures without voxels (kept as empty segments); node attribute
    ``CardiacAI.Task``.

    Raises
    ------
    InputError: non-integer label map, or voxel values that are not in the label set.
    """
    array = np.asarray(labelmap.array)
    if array.dtype.kind not in "iub":
        raise InputError(
            f"the label map has voxel type {array.dtype}; a label map holds integer label values",
            "round and cast it to an integer type (e.g. numpy.uint8)",
        )
    present = np.unique(array)
    unknown = sorted(set(int(v) for v in present) - set(label_set.values) - {0})
    if unknown:
        raise InputError(
            f"the label map contains value(s) {', '.join(map(str, unknown[:10]))} that the "
            f"{label_set.task} label set does not define (valid: {', '.join(map(str, label_set.values))})",
            "check that the label map belongs to this task",
        )
    shared = _oriented_image(array.astype(np.uint8, copy=False), labelmap.ijk_to_ras)

    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(name)
    scene.AddNode(node)
    node.SetAttribute(TASK_ATTRIBUTE, label_set.task)
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName(_BINARY_LABELMAP)
    present_values = set(int(v) for v in present)
    for structure in label_set:
        segment = slicer.vtkSegment()
        segment.SetName(structure.name)
        segment.SetNameAutoGenerated(False)
        segment.SetColor(*structure.color)
        segment.SetColorAutoGenerated(False)
        segment.SetLabelValue(structure.value)
        segment.SetTerminology(structure.terminology_entry())
        segment.SetTag(KEY_TAG, structure.key)
        segment.SetTag(ABSENT_TAG, "false" if structure.value in present_values else "true")
        # The same image object for every segment makes them one shared labelmap layer.
        segment.AddRepresentation(_BINARY_LABELMAP, shared)
        if not segmentation.AddSegment(segment, structure.key):
            raise InputError(f"Slicer refused segment '{structure.key}' of the {label_set.task} label set")
    if reference_volume_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    else:
        segmentation.SetConversionParameter(
            slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
            slicer.vtkSegmentationConverter.SerializeImageGeometry(shared),
        )
    return node


def match_segments(seg_node, label_set: LabelSet) -> dict[str, Structure]:
    """Map every segment ID of ``seg_node`` to its structure of ``label_set``.

    A segment matches a structure, in this order of precedence, by: segment ID equal to the
    structure key; segment name equal to the key or display name (case, spaces, ``_`` and ``-``
    ignored); ``TerminologyEntry`` coding the same concepts (category, type, type modifier, and
    anatomic region where the structure has one). Segment order and label values are never used.

    Raises
    ------
    InputError: a segment matches no structure, or two segments match the same structure.
    """
    segmentation = seg_node.GetSegmentation()
    result: dict[str, Structure] = {}
    unmatched: list[str] = []
    for segment_id in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(segment_id)
        structure = _match_segment(segment_id, segment, label_set)
        if structure is None:
            unmatched.append(f"'{segment.GetName()}' (ID {segment_id})")
            continue
        clash = next((sid for sid, s in result.items() if s.key == structure.key), None)
        if clash is not None:
            raise InputError(
                f"segments '{segmentation.GetSegment(clash).GetName()}' and '{segment.GetName()}' "
                f"both stand for {structure.name}",
                "merge them into one segment or rename one of them",
            )
        result[segment_id] = structure
    if unmatched:
        raise InputError(
            f"segment(s) {', '.join(unmatched)} of '{seg_node.GetName()}' match no structure of "
            f"the {label_set.task} label set",
            f"name each segment after a structure ({', '.join(label_set.names)}) or remove it",
        )
    return result


def _match_segment(segment_id: str, segment, label_set: LabelSet) -> Structure | None:
    for structure in label_set:
        if segment_id == structure.key:
            return structure
    by_name = label_set.find(segment.GetName() or "")
    if by_name is not None:
        return by_name
    codes = parse_terminology_entry(segment.GetTerminology())
    if codes is not None and codes.type is not None:
        candidates = [s for s in label_set if s.matches_terminology(codes)]
        if len(candidates) == 1:
            return candidates[0]
    return None


def _reference_oriented_image(reference: Image) -> "slicer.vtkOrientedImageData":
    i, j, k = reference.shape_ijk
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(i, j, k)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    image.SetImageToWorldMatrix(_vtk_matrix(reference.ijk_to_ras))
    return image


def _layer_on_reference(layer, reference_image) -> np.ndarray:
    """A segment's (shared) binary labelmap resampled onto the reference grid, axes (k, j, i)."""
    resampled = slicer.vtkOrientedImageData()
    ok = slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        layer, reference_image, resampled, False, False
    )
    if not ok:
        raise InputError("a segment's labelmap could not be resampled onto the reference CT grid",
                         "check that the segmentation and the CT overlap")
    dims = reference_image.GetDimensions()
    if resampled.GetDimensions() != dims or resampled.GetPointData().GetScalars() is None:
        # An empty layer (no voxels) resamples to an empty image.
        return np.zeros(dims[::-1], dtype=np.uint8)
    return _numpy_array(resampled)


def labelmap_from_segmentation_node(seg_node, label_set: LabelSet, reference: Image) -> Image:
    """Convert a segmentation node back to a multi-label map on the grid of ``reference``.

    Parameters
    ----------
    seg_node: ``vtkMRMLSegmentationNode`` (from :func:`segmentation_node_from_labelmap`,
        :func:`read_segmentation`, or edited by hand in Slicer).
    label_set: the task's label set; values come from it, segments are matched with
        :func:`match_segments` (ID, name, terminology; never order).
    reference: the CT Image whose grid (shape, LPS geometry) the label map must have.

    Returns
    -------
    Image with uint8 array (k, j, i) of label values (0 background) on ``reference``'s grid
    (nearest-neighbour resampling when the segmentation grid differs), modality "", metadata
    ``task``, ``overlapping_voxels`` (voxels claimed by more than one segment; a later segment
    in the segmentation's order wins) and ``segments`` (segment ID -> structure key).

    Raises
    ------
    InputError: unmatched or duplicate segments, a parent transform on the node, or segments
        without a binary labelmap representation.
    """
    _check_no_parent_transform(seg_node, "segmentation")
    matches = match_segments(seg_node, label_set)
    segmentation = seg_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() and not segmentation.ContainsRepresentation(_BINARY_LABELMAP):
        if not segmentation.CreateRepresentation(_BINARY_LABELMAP):
            raise InputError(f"segmentation '{seg_node.GetName()}' has no binary labelmap and none "
                             "could be made from its other representation",
                             "convert it to a binary labelmap in Slicer's Segmentations module")
    reference_image = _reference_oriented_image(reference)
    out = np.zeros(reference.array.shape, dtype=np.uint8)
    overlapping = 0
    layer_cache: dict[str, np.ndarray] = {}
    for segment_id in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(segment_id)
        layer = segment.GetRepresentation(_BINARY_LABELMAP)
        if layer is None:
            raise InputError(f"segment '{segment.GetName()}' has no binary labelmap")
        cache_key = layer.GetAddressAsString("vtkOrientedImageData")
        if cache_key not in layer_cache:
            layer_cache[cache_key] = _layer_on_reference(layer, reference_image)
        mask = layer_cache[cache_key] == segment.GetLabelValue()
        overlapping += int(np.count_nonzero(out[mask]))
        out[mask] = matches[segment_id].value
    return reference.with_array(
        out,
        modality="",
        metadata={
            "task": label_set.task,
            "overlapping_voxels": overlapping,
            "segments": {sid: s.key for sid, s in matches.items()},
        },
    )


def absent_structures(seg_node, label_set: LabelSet) -> tuple[str, ...]:
    """Keys of the structures of ``label_set`` with no voxel in ``seg_node``, in value order.

    Judged from the voxel data (a structure without a segment counts as absent), so it stays
    right after manual editing, unlike the ``CardiacAI.StructureAbsent`` tag.
    """
    matches = match_segments(seg_node, label_set)
    segmentation = seg_node.GetSegmentation()
    present: set[str] = set()
    for segment_id, structure in matches.items():
        segment = segmentation.GetSegment(segment_id)
        layer = segment.GetRepresentation(_BINARY_LABELMAP)
        if layer is None or layer.GetPointData().GetScalars() is None:
            continue
        values = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars())
        if np.any(values == segment.GetLabelValue()):
            present.add(structure.key)
    return tuple(s.key for s in label_set if s.key not in present)


# -- files through Slicer storage nodes --------------------------------------------------------


def write_segmentation(seg_node, path: str | os.PathLike) -> Path:
    """Write a segmentation node to ``.seg.nrrd`` (or ``.nrrd``) with Slicer's storage node.

    The file keeps segment IDs, names, colours, label values, tags (terminology) and the
    reference image geometry. Written atomically (temporary file, then rename).

    Raises
    ------
    UnsupportedFormatError: other extension.
    InputError: the folder does not exist or is not writable, or Slicer failed to write.
    """
    path = Path(path)
    _check_suffix(path, SEGMENTATION_WRITE_SUFFIXES, "write a segmentation to")
    _write_with_storage_node(slicer.vtkMRMLSegmentationStorageNode(), seg_node, path, "segmentation")
    return path


def read_segmentation(path: str | os.PathLike, scene, name: str | None = None):
    """Read a ``.seg.nrrd`` (or a label map ``.nrrd``/``.nii.gz``/``.nii``) into a new segmentation node.

    Returns the ``vtkMRMLSegmentationNode`` added to ``scene`` (with its storage node).

    Raises
    ------
    InputError: missing file, or Slicer cannot read it (message includes Slicer's reason).
    UnsupportedFormatError: unsupported extension.
    """
    path = Path(path)
    suffix = _check_suffix(path, SEGMENTATION_READ_SUFFIXES, "read a segmentation from")
    _check_readable(path, suffix)
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(name or path.name[: -len(suffix)])
    scene.AddNode(node)
    _read_with_storage_node(slicer.vtkMRMLSegmentationStorageNode(), node, path, scene, "segmentation")
    return node


def write_volume_node(node, path: str | os.PathLike) -> Path:
    """Write a scalar or label map volume node to NRRD, NIfTI (.nii/.nii.gz) or MHA.

    Uses Slicer's ``vtkMRMLVolumeArchetypeStorageNode`` (RAS->LPS as the formats require);
    written atomically.

    Raises
    ------
    UnsupportedFormatError: other extension (detached .nhdr/.mhd headers are refused).
    InputError: the folder does not exist or is not writable, or Slicer failed to write.
    """
    path = Path(path)
    _check_suffix(path, VOLUME_WRITE_SUFFIXES, "write a volume to")
    _write_with_storage_node(slicer.vtkMRMLVolumeArchetypeStorageNode(), node, path, "volume")
    return path


def read_volume_node(path: str | os.PathLike, scene, *, labelmap: bool = False, name: str | None = None):
    """Read one volume file into a new ``vtkMRMLScalarVolumeNode`` (or ``vtkMRMLLabelMapVolumeNode``).

    Only the given file is read (no archetype series guessing from similarly named files).

    Raises
    ------
    InputError: missing file, or Slicer cannot read it (message includes Slicer's reason).
    UnsupportedFormatError: unsupported extension.
    """
    path = Path(path)
    suffix = _check_suffix(path, VOLUME_READ_SUFFIXES, "read a volume from")
    _check_readable(path, suffix)
    node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name or path.name[: -len(suffix)])
    scene.AddNode(node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetSingleFile(1)
    _read_with_storage_node(storage, node, path, scene, "volume")
    return node


def write_seg_nrrd(labelmap: Image, label_set: LabelSet, path: str | os.PathLike, *,
                   reference: Image | None = None, name: str = "Segmentation") -> Path:
    """Write a label map as a Slicer ``.seg.nrrd`` with the label set's segments, without a scene to manage.

    ``reference`` (the CT Image) sets the reference image geometry; by default the label map's
    own grid. Returns the written path. Raises as :func:`segmentation_node_from_labelmap` and
    :func:`write_segmentation`.
    """
    scene = slicer.vtkMRMLScene()
    node = segmentation_node_from_labelmap(labelmap, label_set, scene, name)
    if reference is not None:
        node.GetSegmentation().SetConversionParameter(
            slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
            reference_geometry_string(reference),
        )
    try:
        return write_segmentation(node, path)
    finally:
        scene.Clear(1)


def read_seg_nrrd(path: str | os.PathLike, label_set: LabelSet, reference: Image) -> Image:
    """Read a Slicer ``.seg.nrrd`` into a multilabel map on ``reference``'s grid, without a scene to manage.

    Segments are matched to ``label_set`` structures by id, name or terminology (see
    :func:`labelmap_from_segmentation_node`). Raises InputError for a missing, damaged or
    unmatched file, as :func:`read_segmentation` and :func:`labelmap_from_segmentation_node` do.
    """
    scene = slicer.vtkMRMLScene()
    try:
        node = read_segmentation(path, scene)
        return labelmap_from_segmentation_node(node, label_set, reference)
    finally:
        scene.Clear(1)


def reference_geometry_string(image: Image) -> str:
    """Slicer's serialised "Reference image geometry" of an Image's grid (IJK-to-RAS and extent).

    The value of the segmentation conversion parameter that DICOM SEG export and Slicer's
    resampling use; equal to what ``SetReferenceImageGeometryParameterFromVolumeNode`` stores
    for a volume node made from ``image``.
    """
    i, j, k = image.shape_ijk
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(
        _vtk_matrix(image.ijk_to_ras), [0, i - 1, 0, j - 1, 0, k - 1])


def _write_with_storage_node(storage, node, path: Path, what: str) -> None:
    try:
        with atomic_output(path) as tmp:
            tmp.unlink()  # the storage node writes a new file (and would log about replacing one)
            storage.SetFileName(str(tmp))
            storage.SetUseCompression(1)
            with _captured_vtk_messages() as messages:
                ok = storage.WriteData(node)
            # WriteData can report success without writing (e.g. missing folder): check the file too.
            if not ok or not tmp.is_file() or tmp.stat().st_size == 0:
                details = _storage_details(storage, messages)
                raise InputError(
                    f"Slicer could not write the {what} '{node.GetName()}' to {path}"
                    + (f": {details}" if details else ""),
                    "check free disk space and write permission",
                )
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}", "check free disk space and write permission") from None


def _read_with_storage_node(storage, node, path: Path, scene, what: str) -> None:
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    with _captured_vtk_messages() as messages:
        ok = storage.ReadData(node)
    if not ok:
        details = _storage_details(storage, messages)
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputError(
            f"Slicer could not read {path.name} as a {what}" + (f": {details}" if details else ""),
            "check that the file is complete and of the right kind",
        )


__all__ = [
    "ABSENT_TAG",
    "KEY_TAG",
    "absent_structures",
    "image_from_volume_node",
    "labelmap_from_segmentation_node",
    "match_segments",
    "read_segmentation",
    "read_volume_node",
    "reference_geometry_string",
    "segmentation_node_from_labelmap",
    "volume_node_from_image",
    "write_seg_nrrd",
    "write_segmentation",
    "write_volume_node",
]
