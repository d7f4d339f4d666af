"""The direct .seg.nrrd writer: the same file as Slicer's storage node writes, readable by Slicer."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest

from CardiacAI.errors import InputError, UnsupportedFormatError
from CardiacAI.image import Image
from CardiacAI.io.seg_nrrd import write_seg_nrrd
from CardiacAI.labels import get_label_set


def _oblique_labelmap(task: str, direction_sign: float = 1.0) -> Image:
    rng = np.random.default_rng(1)
    values = get_label_set(task).values
    array = np.zeros((9, 11, 13), np.uint8)
    array[2:7, 3:8, 4:10] = rng.choice(values[: len(values) - 2], (5, 5, 6))  # the last structures absent
    a = np.radians(12)
    direction = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, direction_sign]])
    return Image(array, spacing=(0.3, 0.7, 2.5), origin=(1 / 3, -171.7, 12.345678912), direction=direction)


def _split(path):
    data = path.read_bytes()
    end = data.index(b"\n\n")
    return data[:end].decode().splitlines(), gzip.decompress(data[end + 2:])


def _numbers(text: str) -> list[float]:
    import re

    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


@pytest.mark.parametrize("task, sign", [("whole-heart", 1.0), ("ima-aorta", -1.0)])
def test_same_fields_and_voxels_as_slicers_storage_node(tmp_path, task, sign):
    bridge = pytest.importorskip("CardiacAI.slicer_bridge", reason="needs Slicer's MRML classes (slicer-core)")
    labelmap = _oblique_labelmap(task, sign)
    reference = labelmap.with_array(np.zeros(labelmap.array.shape, np.int16), modality="CT")
    label_set = get_label_set(task)
    ours = write_seg_nrrd(labelmap, label_set, tmp_path / "ours.seg.nrrd", reference=reference)
    theirs = bridge.write_seg_nrrd(labelmap, label_set, tmp_path / "slicer.seg.nrrd", reference=reference)
    our_header, our_voxels = _split(ours)
    their_header, their_voxels = _split(theirs)
    assert our_voxels == their_voxels == labelmap.array.tobytes()
    assert [line.split(":")[0] for line in our_header] == [line.split(":")[0] for line in their_header]
    for mine, slicers in zip(our_header, their_header):
        if mine != slicers:  # only the last digits of floating-point geometry may differ
            assert mine.split(":")[0] in ("space directions", "space origin", "Segmentation_ConversionParameters")
            np.testing.assert_allclose(_numbers(mine), _numbers(slicers), rtol=1e-12, atol=1e-12)
    last = len(label_set.structures) - 1  # absent from the label map: tagged so, and still listed
    tags = f"Segment{last}_Tags:=CardiacAI.Key:{label_set.structures[last].key}|CardiacAI.StructureAbsent:true|"
    assert any(line.startswith(tags) for line in our_header)


def test_slicer_reads_it_back_to_the_same_label_map(tmp_path):
    bridge = pytest.importorskip("CardiacAI.slicer_bridge", reason="needs Slicer's MRML classes (slicer-core)")
    import slicer

    labelmap = _oblique_labelmap("whole-heart")
    label_set = get_label_set("whole-heart")
    path = write_seg_nrrd(labelmap, label_set, tmp_path / "heart.seg.nrrd")
    assert np.array_equal(bridge.read_seg_nrrd(path, label_set, labelmap).array, labelmap.array)
    scene = slicer.vtkMRMLScene()
    node = bridge.read_segmentation(path, scene)
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())] == list(label_set.keys)
    aorta = segmentation.GetSegment("aorta")
    assert aorta.GetName() == "Aorta" and aorta.GetLabelValue() == 5
    np.testing.assert_allclose(aorta.GetColor(), label_set.by_key("aorta").color, atol=1e-6)
    assert bridge.absent_structures(node, label_set) == tuple(
        s.key for s in label_set.structures if s.value not in set(np.unique(labelmap.array)))
    scene.Clear(1)


def test_bad_label_maps_and_paths_are_refused_and_nothing_is_left(tmp_path):
    label_set = get_label_set("whole-heart")
    labelmap = _oblique_labelmap("whole-heart")
    with pytest.raises(UnsupportedFormatError):
        write_seg_nrrd(labelmap, label_set, tmp_path / "heart.nii.gz")
    with pytest.raises(InputError, match="integer"):
        write_seg_nrrd(labelmap.with_array(labelmap.array.astype(np.float32)), label_set, tmp_path / "a.seg.nrrd")
    with pytest.raises(InputError, match="42"):
        write_seg_nrrd(labelmap.with_array(np.where(labelmap.array == 3, 42, labelmap.array).astype(np.uint8)),
                       label_set, tmp_path / "b.seg.nrrd")
    with pytest.raises(InputError):
        write_seg_nrrd(labelmap, label_set, tmp_path / "nowhere" / "c.seg.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_writing_the_output_folder_does_not_load_slicer(tmp_path):
    """The command line writes its .seg.nrrd without Slicer's libraries (about 0.7 s to load)."""
    code = (
        "import sys, numpy as np\n"
        "from CardiacAI.image import Image\n"
        "from CardiacAI.labels import get_label_set\n"
        "from CardiacAI.postprocess import Presence\n"
        "from CardiacAI.segmentation import SegmentationResult, write_outputs, measure_structures\n"
        "hu = np.random.default_rng(0).normal(40, 20, (8, 20, 20)).astype(np.int16)\n"
        "ct = Image(hu, spacing=(1, 1, 2), modality='CT')\n"
        "lab = np.zeros(ct.array.shape, np.uint8); lab[2:6, 5:15, 5:15] = 5\n"
        "ls = get_label_set('whole-heart'); lm = ct.with_array(lab, modality='')\n"
        "presence = {s.key: Presence(s.value == 5, 0.0, None) for s in ls.structures}\n"
        "run = {'model': {'id': 'm', 'version': '1.0.0'}, 'timings_s': {}}\n"
        "result = SegmentationResult('whole-heart', lm, ls, presence, measure_structures(ct, lm, ls, presence), run)\n"
        f"write_outputs(result, ct, {str(tmp_path / 'out')!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('slicer', 'vtk', 'slicer_core')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "out" / "segmentation.seg.nrrd").is_file()
