"""Slicer bridge on headless slicer-core: volumes, segmentations and their files, synthetic and real CT."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (headless MRML) is not installed")
vtk = pytest.importorskip("vtk")
from vtk.util import numpy_support  # noqa: E402

from CardiacAI import slicer_bridge as bridge  # noqa: E402
from CardiacAI.errors import InputError, UnsupportedFormatError  # noqa: E402
from CardiacAI.image import Image  # noqa: E402
from CardiacAI.labels import get_label_set  # noqa: E402

WHOLE_HEART = get_label_set("whole-heart")
IMA_AORTA = get_label_set("ima-aorta")
#: seg.nrrd stores segment colours as text with 6 significant digits.
FILE_COLOUR_PRECISION = 1e-6


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def _node_ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _synthetic_labelmap(direction=None, shape=(12, 20, 24), values=range(1, 11)) -> Image:
    """Label map with one irregular blob per value (0 elsewhere) on an arbitrary grid."""
    direction = np.eye(3) if direction is None else direction
    rng = np.random.default_rng(7)
    array = np.zeros(shape, np.uint8)
    for value in values:
        k, j, i = (rng.integers(0, s - 3) for s in shape)
        array[k:k + 3, j:j + rng.integers(2, 6), i:i + rng.integers(2, 8)] = value
        array[rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(0, shape[2])] = value
    return Image(array, spacing=(0.7, 0.8, 2.5), origin=(-12.5, 30.25, -100.0), direction=direction)


def _float32_rounding(image: Image) -> float:
    """Largest rounding error (mm) of the grid matrix stored as float32, as NIfTI headers store it;
    NRRD and MHA store decimal text with full double precision."""
    return float(np.finfo(np.float32).eps * np.abs(image.ijk_to_ras).max())


def _sorted_physical_samples(image: Image) -> np.ndarray:
    """(value, x, y, z) of every voxel centre in LPS, sorted: equal for two indexings of one volume."""
    k, j, i = np.indices(image.array.shape)
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    points = (image.ijk_to_lps @ ijk)[:3].T.round(6)
    rows = np.column_stack([image.array.ravel().astype(float), points])
    return rows[np.lexsort(rows.T[::-1])]


# -- volumes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_volume_node_round_trip_keeps_voxels_dtype_and_geometry(dtype):
    direction = _rotation([1, 2, 3], 23.0)
    values = np.random.default_rng(1).normal(0, 300, size=(5, 6, 7))
    image = Image(values.astype(dtype), spacing=(0.68, 0.74, 1.25), origin=(10.5, -20.25, 301.0),
                  direction=direction, modality="CT", metadata={"kvp": 120.0, "series": "1.2.3"})
    scene = slicer.vtkMRMLScene()
    node = bridge.volume_node_from_image(image, scene, "CT")
    assert scene.GetNodeByID(node.GetID()) is node
    np.testing.assert_allclose(_node_ijk_to_ras(node), image.ijk_to_ras, rtol=0, atol=1e-12)
    back = bridge.image_from_volume_node(node)
    assert back.array.dtype == image.array.dtype
    assert np.array_equal(back.array, image.array)
    assert back.same_geometry(image, atol=1e-12)
    assert back.modality == "CT" and back.metadata == image.metadata
    # The Image owns a copy: editing it does not change the node.
    back.array[0, 0, 0] += 1
    assert np.array_equal(bridge.image_from_volume_node(node).array, image.array)


def test_volume_nodes_refuse_what_they_cannot_represent():
    scene = slicer.vtkMRMLScene()
    with pytest.raises(InputError, match="bool"):
        bridge.volume_node_from_image(Image(np.zeros((2, 3, 4), bool), spacing=(1, 1, 1)), scene)
    node = bridge.volume_node_from_image(Image(np.zeros((2, 3, 4), np.int16), spacing=(1, 1, 1)), scene)
    transform = slicer.vtkMRMLLinearTransformNode()
    scene.AddNode(transform)
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match="[Hh]arden"):
        bridge.image_from_volume_node(node)
    empty = slicer.vtkMRMLScalarVolumeNode()
    scene.AddNode(empty)
    with pytest.raises(InputError, match="no voxel data"):
        bridge.image_from_volume_node(empty)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha"])
def test_labelmap_volume_file_round_trip_oblique(tmp_path, suffix):
    labelmap = _synthetic_labelmap(direction=_rotation([0.2, -1, 0.4], 31.0))
    scene = slicer.vtkMRMLScene()
    node = bridge.volume_node_from_image(labelmap, scene, "labels", labelmap=True)
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    path = bridge.write_volume_node(node, tmp_path / f"labels{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"labels{suffix}"]  # no temporary left
    read = bridge.read_volume_node(path, slicer.vtkMRMLScene(), labelmap=True)
    assert read.IsA("vtkMRMLLabelMapVolumeNode")
    back = bridge.image_from_volume_node(read)
    assert back.array.dtype == np.uint8
    assert np.array_equal(back.array, labelmap.array)
    tolerance = _float32_rounding(labelmap) if suffix.startswith(".nii") else 1e-9
    np.testing.assert_allclose(_node_ijk_to_ras(read), labelmap.ijk_to_ras, rtol=0, atol=tolerance)


def test_left_handed_grid_comes_back_as_the_same_physical_volume(tmp_path):
    # Slicer's reader re-indexes left-handed grids; the voxels stay at the same places.
    direction = np.diag([1.0, 1.0, -1.0]) @ _rotation([0, 0, 1], 10.0)
    labelmap = _synthetic_labelmap(direction=direction)
    scene = slicer.vtkMRMLScene()
    path = bridge.write_volume_node(bridge.volume_node_from_image(labelmap, scene, labelmap=True),
                                    tmp_path / "left.nrrd")
    back = bridge.image_from_volume_node(bridge.read_volume_node(path, scene, labelmap=True))
    assert np.array_equal(_sorted_physical_samples(back), _sorted_physical_samples(labelmap))


def test_volume_file_errors_are_clear(tmp_path):
    scene = slicer.vtkMRMLScene()
    node = bridge.volume_node_from_image(_synthetic_labelmap(), scene, labelmap=True)
    with pytest.raises(UnsupportedFormatError, match=r"\.png"):
        bridge.write_volume_node(node, tmp_path / "labels.png")
    with pytest.raises(InputError, match="does not exist"):
        bridge.write_volume_node(node, tmp_path / "missing-folder" / "labels.nrrd")
    with pytest.raises(InputError, match="does not exist"):
        bridge.read_volume_node(tmp_path / "absent.nrrd", scene)
    garbage = tmp_path / "garbage.nrrd"
    garbage.write_bytes(b"this is not a volume")
    with pytest.raises(InputError, match="(?i)garbage.nrrd is damaged"):
        bridge.read_volume_node(garbage, scene)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_truncated_volume_files_are_refused_not_read_as_partial_volumes(tmp_path, suffix):
    # ITK reads a truncated NIfTI without complaint, filling the missing voxels.
    noise = np.random.default_rng(3).integers(0, 11, (40, 50, 60)).astype(np.uint8)  # incompressible
    labelmap = Image(noise, spacing=(0.7, 0.8, 2.5))
    scene = slicer.vtkMRMLScene()
    path = bridge.write_volume_node(bridge.volume_node_from_image(labelmap, scene, labelmap=True),
                                    tmp_path / f"labels{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="damaged or incomplete"):
        bridge.read_volume_node(path, scene, labelmap=True)


# -- segmentations -----------------------------------------------------------------------------


def _segments(seg_node):
    segmentation = seg_node.GetSegmentation()
    return {sid: segmentation.GetSegment(sid) for sid in segmentation.GetSegmentIDs()}


def _tag(segment, name):
    value = vtk.reference("")
    return value.get() if segment.GetTag(name, value) else None


def _assert_segments_carry_the_label_set(seg_node, label_set, colour_atol=0.0):
    segments = _segments(seg_node)
    assert list(segments) == list(label_set.keys)
    for structure in label_set:
        segment = segments[structure.key]
        assert segment.GetName() == structure.name
        np.testing.assert_allclose(segment.GetColor(), structure.color, rtol=0, atol=colour_atol)
        assert segment.GetLabelValue() == structure.value
        assert segment.GetTerminology() == structure.terminology_entry()
        assert _tag(segment, bridge.KEY_TAG) == structure.key


def test_segmentation_from_labelmap_has_every_structure_and_marks_absent_ones():
    labelmap = _synthetic_labelmap(values=[1, 2, 3, 5, 8])  # 4, 6, 7, 9, 10 absent
    scene = slicer.vtkMRMLScene()
    seg = bridge.segmentation_node_from_labelmap(labelmap, WHOLE_HEART, scene, "heart")
    _assert_segments_carry_the_label_set(seg, WHOLE_HEART)
    assert seg.GetAttribute("CardiacAI.Task") == "whole-heart"
    absent_keys = {WHOLE_HEART.by_value(v).key for v in (4, 6, 7, 9, 10)}
    for sid, segment in _segments(seg).items():
        assert _tag(segment, bridge.ABSENT_TAG) == ("true" if sid in absent_keys else "false")
    assert set(bridge.absent_structures(seg, WHOLE_HEART)) == absent_keys
    back = bridge.labelmap_from_segmentation_node(seg, WHOLE_HEART, labelmap)
    assert back.array.dtype == np.uint8
    assert np.array_equal(back.array, labelmap.array)
    assert back.same_geometry(labelmap)
    assert back.metadata["overlapping_voxels"] == 0


def test_reference_geometry_comes_from_the_reference_volume():
    ct = _synthetic_labelmap(direction=_rotation([1, 0, 1], 12.0)).with_array(
        np.zeros((12, 20, 24), np.int16), modality="CT")
    scene = slicer.vtkMRMLScene()
    ct_node = bridge.volume_node_from_image(ct, scene, "CT")
    seg = bridge.segmentation_node_from_labelmap(ct.with_array(_synthetic_labelmap().array), WHOLE_HEART,
                                                 scene, reference_volume_node=ct_node)
    geometry_name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    expected = slicer.vtkSegmentationConverter.SerializeImageGeometry(
        slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(ct_node))
    assert seg.GetSegmentation().GetConversionParameter(geometry_name) == expected
    assert bridge.reference_geometry_string(ct) == expected
    assert seg.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()) is ct_node


def test_write_seg_nrrd_stores_the_reference_ct_geometry(tmp_path):
    ct = Image(np.zeros((30, 40, 50), np.int16), spacing=(0.5, 0.5, 1.0), origin=(-20.0, -25.0, -10.0),
               direction=_rotation([0, 0, 1], 5.0), modality="CT")
    labelmap = _synthetic_labelmap()  # a smaller grid inside the CT
    path = bridge.write_seg_nrrd(labelmap, WHOLE_HEART, tmp_path / "s.seg.nrrd", reference=ct)
    seg = bridge.read_segmentation(path, slicer.vtkMRMLScene())
    geometry_name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    assert seg.GetSegmentation().GetConversionParameter(geometry_name) == bridge.reference_geometry_string(ct)


def test_image_data_with_a_non_zero_extent_start_keeps_its_physical_position():
    # Slicer volumes can carry image data whose extent does not start at index 0 (e.g. after cropping).
    scene = slicer.vtkMRMLScene()
    full = _synthetic_labelmap(direction=_rotation([1, 1, 0], 15.0))
    node = bridge.volume_node_from_image(full, scene, labelmap=True)
    cropped = vtk.vtkExtractVOI()
    cropped.SetInputData(node.GetImageData())
    cropped.SetVOI(3, 20, 2, 15, 1, 9)
    cropped.Update()
    node.SetAndObserveImageData(cropped.GetOutput())
    assert node.GetImageData().GetExtent()[::2] == (3, 2, 1)
    back = bridge.image_from_volume_node(node)
    assert np.array_equal(back.array, full.array[1:10, 2:16, 3:21])
    np.testing.assert_allclose(back.ijk_to_lps @ [0, 0, 0, 1], full.ijk_to_lps @ [3, 2, 1, 1], atol=1e-9)


def test_bad_labelmaps_are_refused():
    scene = slicer.vtkMRMLScene()
    labelmap = _synthetic_labelmap(values=range(1, 6))
    with pytest.raises(InputError, match="value"):
        bridge.segmentation_node_from_labelmap(labelmap.with_array(labelmap.array * 3), IMA_AORTA, scene)
    with pytest.raises(InputError, match="float"):
        bridge.segmentation_node_from_labelmap(labelmap.with_array(labelmap.array.astype(np.float32)),
                                               IMA_AORTA, scene)


def _hand_made_segmentation(labelmap: Image, entries, scene):
    """A segmentation as a Slicer user might make it: own IDs, names, order, separate layers."""
    seg = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(seg)
    for segment_id, name, terminology, mask in entries:
        k, j, i = mask.shape
        image = slicer.vtkOrientedImageData()
        image.SetDimensions(i, j, k)
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.astype(np.uint8).ravel(), deep=True))
        matrix = vtk.vtkMatrix4x4()
        for r in range(4):
            for c in range(4):
                matrix.SetElement(r, c, labelmap.ijk_to_ras[r, c])
        image.SetImageToWorldMatrix(matrix)
        segment = slicer.vtkSegment()
        segment.SetName(name)
        if terminology:
            segment.SetTerminology(terminology)
        segment.AddRepresentation("Binary labelmap", image)
        seg.GetSegmentation().AddSegment(segment, segment_id)
    return seg


def test_segments_are_matched_by_id_name_or_terminology_not_by_order():
    labelmap = _synthetic_labelmap(values=range(1, 6))
    array = labelmap.array
    aorta, lima, periaortic = (IMA_AORTA.by_key(k) for k in ("aorta", "left_internal_mammary_artery",
                                                             "periaortic_region"))
    scene = slicer.vtkMRMLScene()
    seg = _hand_made_segmentation(labelmap, [
        ("Segment_1", "Periaortic Region", "", array == 5),                      # by name
        ("Segment_2", "my vessel", aorta.terminology_entry(), array == 4),      # by terminology
        ("left_internal_mammary_artery", "whatever", "", array == 1),           # by ID
        ("Segment_4", "RIGHT_INTERNAL_MAMMARY_ARTERY", "", array == 2),         # by key as name
        ("Segment_5", "fat", IMA_AORTA.by_key("peri_ima_region").terminology_entry(), array == 3),
    ], scene)
    matches = bridge.match_segments(seg, IMA_AORTA)
    assert matches["Segment_1"] == periaortic and matches["Segment_2"] == aorta
    assert matches["left_internal_mammary_artery"] == lima
    back = bridge.labelmap_from_segmentation_node(seg, IMA_AORTA, labelmap)
    assert np.array_equal(back.array, array)
    assert back.metadata["overlapping_voxels"] == 0


def test_unmatched_and_duplicate_segments_are_errors():
    labelmap = _synthetic_labelmap(values=range(1, 6))
    scene = slicer.vtkMRMLScene()
    unknown = _hand_made_segmentation(labelmap, [("Segment_1", "Liver", "", labelmap.array == 1)], scene)
    with pytest.raises(InputError, match="Liver.*match no structure"):
        bridge.labelmap_from_segmentation_node(unknown, IMA_AORTA, labelmap)
    twice = _hand_made_segmentation(labelmap, [("Segment_1", "Aorta", "", labelmap.array == 4),
                                               ("Segment_2", "aorta", "", labelmap.array == 1)], scene)
    with pytest.raises(InputError, match="both stand for Aorta"):
        bridge.labelmap_from_segmentation_node(twice, IMA_AORTA, labelmap)


def test_overlapping_segments_later_one_wins_and_overlap_is_counted():
    labelmap = _synthetic_labelmap(values=[])
    aorta_mask = np.zeros(labelmap.array.shape, bool)
    aorta_mask[2:6, 3:9, 4:10] = True
    fat_mask = np.zeros(labelmap.array.shape, bool)
    fat_mask[4:8, 5:12, 8:14] = True
    scene = slicer.vtkMRMLScene()
    seg = _hand_made_segmentation(labelmap, [("a", "Aorta", "", aorta_mask),
                                             ("b", "Periaortic region", "", fat_mask)], scene)
    back = bridge.labelmap_from_segmentation_node(seg, IMA_AORTA, labelmap)
    assert np.all(back.array[fat_mask] == 5)
    assert np.all(back.array[aorta_mask & ~fat_mask] == 4)
    assert back.metadata["overlapping_voxels"] == int(np.count_nonzero(aorta_mask & fat_mask))
    # Reordering the segments reverses the winner.
    seg.GetSegmentation().SetSegmentIndex("b", 0)
    back = bridge.labelmap_from_segmentation_node(seg, IMA_AORTA, labelmap)
    assert np.all(back.array[aorta_mask] == 4)


@pytest.mark.parametrize("direction", [
    np.eye(3),
    _rotation([1, -2, 0.5], 37.0),                        # oblique, right-handed
    np.diag([1.0, -1.0, 1.0]) @ _rotation([0, 1, 1], 20),  # oblique, left-handed
], ids=["axial", "oblique", "left-handed"])
def test_seg_nrrd_round_trip_is_exact(tmp_path, direction):
    labelmap = _synthetic_labelmap(direction=direction)
    path = bridge.write_seg_nrrd(labelmap, WHOLE_HEART, tmp_path / "heart.seg.nrrd", reference=labelmap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heart.seg.nrrd"]
    seg = bridge.read_segmentation(path, slicer.vtkMRMLScene())
    assert seg.GetName() == "heart"
    _assert_segments_carry_the_label_set(seg, WHOLE_HEART, colour_atol=FILE_COLOUR_PRECISION)
    back = bridge.labelmap_from_segmentation_node(seg, WHOLE_HEART, labelmap)
    assert np.array_equal(back.array, labelmap.array)


def test_segmentation_file_errors_are_clear(tmp_path):
    labelmap = _synthetic_labelmap()
    with pytest.raises(UnsupportedFormatError, match=r"\.nii\.gz"):
        bridge.write_seg_nrrd(labelmap, WHOLE_HEART, tmp_path / "heart.nii.gz")
    with pytest.raises(InputError, match="does not exist"):
        bridge.write_seg_nrrd(labelmap, WHOLE_HEART, tmp_path / "nowhere" / "heart.seg.nrrd")
    with pytest.raises(InputError, match="does not exist"):
        bridge.read_segmentation(tmp_path / "absent.seg.nrrd", slicer.vtkMRMLScene())
    # Slicer's own reader aborts the process on these two; the bridge must refuse them first.
    broken = tmp_path / "broken.seg.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: nonsense\n\n")
    with pytest.raises(InputError, match="(?i)broken.seg.nrrd is damaged"):
        bridge.read_segmentation(broken, slicer.vtkMRMLScene())
    whole = bridge.write_seg_nrrd(labelmap.with_array(
        np.random.default_rng(5).integers(0, 11, (12, 20, 24)).astype(np.uint8)), WHOLE_HEART,
        tmp_path / "whole.seg.nrrd")
    truncated = tmp_path / "truncated.seg.nrrd"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size - 200])
    with pytest.raises(InputError, match="(?i)truncated.seg.nrrd is damaged or incomplete"):
        bridge.read_segmentation(truncated, slicer.vtkMRMLScene())


def test_writing_over_an_existing_file_replaces_it_atomically(tmp_path):
    path = tmp_path / "heart.seg.nrrd"
    bridge.write_seg_nrrd(_synthetic_labelmap(values=[1]), WHOLE_HEART, path)
    second = _synthetic_labelmap(values=[2, 3])
    bridge.write_seg_nrrd(second, WHOLE_HEART, path)
    back = bridge.labelmap_from_segmentation_node(bridge.read_segmentation(path, slicer.vtkMRMLScene()),
                                                  WHOLE_HEART, second)
    assert np.array_equal(back.array, second.array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heart.seg.nrrd"]


# -- real CT -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["lidc1_image", "lidc2_image"])
def test_real_ct_volume_node_round_trip_is_exact(fixture, request):
    ct = request.getfixturevalue(fixture)
    scene = slicer.vtkMRMLScene()
    node = bridge.volume_node_from_image(ct, scene, "CT")
    np.testing.assert_allclose(_node_ijk_to_ras(node), ct.ijk_to_ras, rtol=0, atol=1e-9)
    back = bridge.image_from_volume_node(node)
    assert back.array.dtype == ct.array.dtype
    assert np.array_equal(back.array, ct.array)
    assert back.same_geometry(ct, atol=1e-9)
    assert back.modality == ct.modality == "CT"
    assert back.metadata == json.loads(json.dumps(ct.metadata, default=str))


def _real_ct_labelmap(ct: Image) -> Image:
    """All 10 whole-heart labels on the real CT grid: HU-thresholded bone and air, plus boxes."""
    hu = ct.array
    labels = np.zeros(hu.shape, np.uint8)
    labels[hu > 300] = 1            # bone and contrast: irregular, real shapes
    labels[hu < -900] = 2           # lungs and outside air
    k, j, i = hu.shape
    for value in range(3, 11):
        box_k = slice((value * k) // 14, (value * k) // 14 + k // 10)
        box_j = slice(j // 3 + 4 * value, j // 3 + 4 * value + 40)
        box_i = slice(i // 3 + 6 * value, i // 3 + 6 * value + 30)
        region = labels[box_k, box_j, box_i]
        region[hu[box_k, box_j, box_i] > -200] = value   # box restricted to soft tissue
    return ct.with_array(labels, modality="")


@pytest.mark.slow
def test_real_ct_labelmap_through_seg_nrrd_and_volume_files_is_exact(lidc1_image, tmp_path):
    ct = lidc1_image
    labelmap = _real_ct_labelmap(ct)
    assert set(np.unique(labelmap.array)) == set(range(0, 11))
    scene = slicer.vtkMRMLScene()
    ct_node = bridge.volume_node_from_image(ct, scene, "CT")
    seg = bridge.segmentation_node_from_labelmap(labelmap, WHOLE_HEART, scene, reference_volume_node=ct_node)
    assert bridge.absent_structures(seg, WHOLE_HEART) == ()
    path = bridge.write_segmentation(seg, tmp_path / "segmentation.seg.nrrd")

    read = bridge.read_segmentation(path, slicer.vtkMRMLScene())
    _assert_segments_carry_the_label_set(read, WHOLE_HEART, colour_atol=FILE_COLOUR_PRECISION)
    geometry_name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    assert (read.GetSegmentation().GetConversionParameter(geometry_name)
            == seg.GetSegmentation().GetConversionParameter(geometry_name))
    back = bridge.labelmap_from_segmentation_node(read, WHOLE_HEART, ct)
    assert np.array_equal(back.array, labelmap.array)
    assert back.same_geometry(ct)

    label_node = bridge.volume_node_from_image(labelmap, scene, "labels", labelmap=True)
    for suffix, tolerance in ((".nrrd", 1e-9), (".nii.gz", _float32_rounding(ct))):
        file = bridge.write_volume_node(label_node, tmp_path / f"labels{suffix}")
        again = bridge.image_from_volume_node(bridge.read_volume_node(file, scene, labelmap=True))
        assert np.array_equal(again.array, labelmap.array)
        assert again.same_geometry(ct, atol=tolerance)
