"""Overview pictures: a PNG of the right size whose contour pixels carry the structures' colours."""

import numpy as np
import pytest

from CardiacAI.image import Image
from CardiacAI.labels import get_label_set
from CardiacAI.overview import render_overview


def test_overview_draws_each_present_structure_in_its_colour(tmp_path):
    import matplotlib.image as mpimg

    rng = np.random.default_rng(0)
    ct = Image(rng.normal(0, 30, (40, 64, 64)).astype(np.int16), spacing=(0.7, 0.7, 2.5), modality="CT")
    labels = np.zeros(ct.array.shape, np.uint8)
    labels[10:30, 20:40, 20:44] = 5  # aorta
    ls = get_label_set("whole-heart")
    out = render_overview(ct, tmp_path / "overview.png", labelmap=ct.with_array(labels), label_set=ls, title="test")
    png = mpimg.imread(out)[..., :3]
    assert png.shape[0] > 300 and png.shape[1] > 900
    aorta = np.array(ls.by_key("aorta").color)
    lv = np.array(ls.by_key("left_ventricle_cavity").color)
    near = lambda c: (np.abs(png - c).max(axis=-1) < 0.03).sum()
    assert near(aorta) > 50  # contour (and legend) drawn in the aorta's colour
    assert near(lv) == 0  # absent structures are neither drawn nor listed


def test_overview_refuses_labels_on_another_grid(tmp_path):
    from CardiacAI.errors import InputError

    ct = Image(np.zeros((4, 8, 8), np.int16), spacing=(1, 1, 1))
    with pytest.raises(InputError, match="grid"):
        render_overview(ct, tmp_path / "x.png", labelmap=Image(np.zeros((4, 8, 9), np.uint8), spacing=(1, 1, 1)))
    assert not (tmp_path / "x.png").exists()


def test_patient_left_is_shown_on_the_viewer_right(tmp_path):
    """Radiological convention, whichever way the i axis points in the file."""
    import matplotlib.image as mpimg

    ls = get_label_set("whole-heart")
    for sign in (1.0, -1.0):
        direction = np.diag([sign, 1.0, 1.0])
        ct = Image(np.zeros((20, 40, 40), np.int16), spacing=(1, 1, 1), direction=direction, modality="CT")
        ct.array[0, 0, 0] = 1  # not constant
        labels = np.zeros(ct.array.shape, np.uint8)
        # An "aorta" blob on the patient's left: +x in LPS, i.e. large i when sign > 0, small i otherwise.
        cols = slice(28, 36) if sign > 0 else slice(4, 12)
        labels[5:15, 15:25, cols] = 5
        out = render_overview(ct, tmp_path / f"o{sign}.png", labelmap=ct.with_array(labels), label_set=ls)
        png = mpimg.imread(out)[..., :3]
        axial = png[: int(png.shape[0] * 0.85), : png.shape[1] // 3]
        hits = np.argwhere(np.abs(axial - np.array(ls.by_key("aorta").color)).max(axis=-1) < 0.03)
        assert hits.size and hits[:, 1].mean() > axial.shape[1] / 2, f"direction sign {sign}"


def test_views_pass_through_the_centroid_of_the_labelled_voxels():
    from CardiacAI.overview import _centre_of

    rng = np.random.default_rng(2)
    for _ in range(5):
        mask = np.zeros((30, 80, 90), bool)
        mask[rng.integers(0, 30, 40), rng.integers(0, 80, 40), rng.integers(0, 90, 40)] = True
        mask[5:9, 10:60, 70:88] = True
        assert _centre_of(mask) == tuple(int(v) for v in np.round(np.argwhere(mask).mean(axis=0)))
