"""Resampling to and from model spacing, sliding-window inference, progress and cancel."""

import threading

import numpy as np
import pytest
import torch

from CardiacAI.errors import InputError, OperationCancelled
from CardiacAI.image import Image
from CardiacAI.inference import (
    choose_device,
    labels_from_probabilities,
    labels_from_probabilities_onto,
    resample_labels_onto,
    resample_to_spacing,
    sliding_window_logits,
)


def _oblique():
    a = np.radians(15)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _ball_image(shape=(40, 50, 60), spacing=(0.7, 0.7, 2.5)):
    k, j, i = np.indices(shape)
    centre = np.array(shape) / 2
    # A ball of radius 12 mm in physical units: labels and intensities agree with each other.
    dist = np.sqrt(((k - centre[0]) * spacing[2]) ** 2 + ((j - centre[1]) * spacing[1]) ** 2
                   + ((i - centre[2]) * spacing[0]) ** 2)
    arr = np.where(dist < 12, 300, -100).astype(np.int16)
    return Image(arr, spacing=spacing, origin=(-20, 30, 100), direction=_oblique(), modality="CT"), dist < 12


def test_resampling_keeps_physical_extent_and_direction():
    image, _ = _ball_image()
    iso = resample_to_spacing(image, (1.5, 1.5, 1.5))
    assert iso.spacing == (1.5, 1.5, 1.5)
    assert np.allclose(iso.direction, image.direction)
    old_extent = np.array(image.shape_ijk) * np.array(image.spacing)
    new_extent = np.array(iso.shape_ijk) * np.array(iso.spacing)
    assert np.all(new_extent >= old_extent - 1e-6) and np.all(new_extent - old_extent < 1.5)
    # The outer corner of voxel 0 stays where it was.
    corner_old = image.ijk_to_lps @ [-0.5, -0.5, -0.5, 1]
    corner_new = iso.ijk_to_lps @ [-0.5, -0.5, -0.5, 1]
    assert np.allclose(corner_old, corner_new)
    # The ball keeps its volume (4/3 pi 12^3 = 7238 mm^3) within partial-volume error.
    assert (iso.array > 100).sum() * 1.5 ** 3 == pytest.approx(7238, rel=0.1)


def test_labels_come_back_on_the_exact_input_grid():
    image, ball = _ball_image()
    labels = image.with_array(ball.astype(np.uint8))
    coarse = resample_to_spacing(labels, (2.0, 2.0, 2.0), is_label=True)
    assert coarse.array.dtype == np.uint8 and set(np.unique(coarse.array)) == {0, 1}
    back = resample_labels_onto(coarse, image)
    assert back.same_geometry(image)
    dice = 2 * np.logical_and(back.array == 1, ball).sum() / ((back.array == 1).sum() + ball.sum())
    assert dice > 0.9


def test_probabilities_come_back_as_the_argmax_of_their_trilinear_resampling():
    """labels_from_probabilities_onto interpolates only near label boundaries; the result must be
    exactly the argmax of every class's probability resampled (trilinear) onto the input grid."""
    import SimpleITK as sitk
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    raw = ndi.gaussian_filter(rng.random((4, 20, 30, 25)), (0, 2, 2, 2))
    probs = (raw / raw.sum(0)).astype(np.float32)
    grid = Image(np.zeros((20, 30, 25), np.float32), spacing=(1, 1, 2), origin=(0, 0, 0), direction=np.eye(3))
    reference = Image(np.zeros((55, 40, 36), np.int16), spacing=(0.7, 0.7, 0.75), origin=(23.7, 0.2, 0.3),
                      direction=np.diag([-1.0, 1.0, 1.0]) @ _oblique())
    labels = labels_from_probabilities_onto(probs, grid, reference)
    resampled = []
    for c in range(4):
        out = sitk.Resample(grid.with_array(probs[c]).to_sitk(), [int(n) for n in reference.shape_ijk],
                            sitk.Transform(), sitk.sitkLinear, tuple(reference.origin), tuple(reference.spacing),
                            tuple(reference.direction.ravel()), -1.0)
        resampled.append(sitk.GetArrayFromImage(out))
    resampled = np.stack(resampled)
    inside = resampled[0] >= 0
    assert labels.shape == reference.array.shape and 0.5 < inside.mean() < 1
    assert len(np.unique(labels[inside])) == 4
    np.testing.assert_array_equal(labels[inside], labels_from_probabilities(resampled)[inside])
    # the model-grid argmax the caller already has gives the same labels; one of another grid is refused
    np.testing.assert_array_equal(
        labels_from_probabilities_onto(probs, grid, reference, labels_from_probabilities(probs)), labels)
    with pytest.raises(InputError, match="model-grid labels"):
        labels_from_probabilities_onto(probs, grid, reference, labels_from_probabilities(probs[:, :, :5]))


def test_a_thin_artery_keeps_its_width_between_model_voxels():
    """A 2.4 mm artery predicted on a 1 x 1 x 2 mm grid comes back onto a 0.7 mm grid with its edge
    between the model's voxels: Dice >= 0.9 against the true artery (nearest-neighbour labels: 0.79).
    The artery runs slightly oblique, so it crosses the grids at every sub-voxel offset."""
    radius = 1.2

    def artery_distance(image):
        k, j, i = np.indices(image.array.shape)
        x, y, z, _ = image.ijk_to_lps @ np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
        return np.hypot(x - (8 + 0.15 * z), y - (7 + 0.1 * z)).reshape(image.array.shape)

    grid = Image(np.zeros((40, 24, 24), np.float32), spacing=(1, 1, 2), origin=(0, 0, 0), direction=np.eye(3))
    probability = 1 / (1 + np.exp((artery_distance(grid) - radius) / 0.3))  # a calibrated network's score
    probs = np.stack([1 - probability, probability]).astype(np.float32)
    reference = Image(np.zeros((32, 34, 34), np.int16), spacing=(0.7, 0.7, 2.5), origin=(0, 0, 0),
                      direction=np.eye(3))
    truth = artery_distance(reference) <= radius

    def dice(labels):
        return 2 * np.sum((labels == 1) & truth) / (np.sum(labels == 1) + truth.sum())

    assert dice(labels_from_probabilities_onto(probs, grid, reference)) >= 0.9
    nearest = resample_labels_onto(grid.with_array(labels_from_probabilities(probs)), reference).array
    assert dice(nearest) < 0.85  # what the finer edge is for
    with pytest.raises(InputError, match="do not match the model grid"):
        labels_from_probabilities_onto(probs[:, :5], grid, reference)


class _ThresholdNet(torch.nn.Module):
    """Two-class 'network' whose logits follow the intensity: class 1 where the input is > 0."""

    def forward(self, x):
        return torch.cat([-x, x], dim=1) * 10


def test_sliding_window_segments_whole_volume_with_monotonic_progress():
    image, ball = _ball_image(shape=(30, 40, 50))
    volume = (image.array.astype(np.float32) / 1000.0)
    seen = []
    probs = sliding_window_logits(volume, _ThresholdNet().eval(), roi_size=(16, 24, 24),
                                  device=choose_device(prefer_gpu=False), overlap=0.25,
                                  progress=lambda f, msg: seen.append(f))
    assert probs.shape == (2,) + volume.shape
    assert np.allclose(probs.sum(axis=0), 1, atol=1e-5)
    assert np.array_equal(probs.argmax(axis=0) == 1, ball)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) > 1


def test_cancel_stops_inference():
    image, _ = _ball_image(shape=(30, 40, 50))
    cancel = threading.Event()
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        cancel.set()  # the user presses Cancel after the first window batch

    with pytest.raises(OperationCancelled, match="cancelled"):
        sliding_window_logits(image.array.astype(np.float32), _ThresholdNet().eval(), roi_size=(16, 16, 16),
                              device=choose_device(prefer_gpu=False), progress=progress, cancel=cancel)
    assert len(calls) == 1


def test_device_choice_says_why_cpu(monkeypatch):
    choice = choose_device(prefer_gpu=False)
    assert choice.device == "cpu" and "switched off" in choice.reason
    monkeypatch.setenv("CARDIACAI_CPU_BFLOAT16", "0")
    choice = choose_device(prefer_gpu=False)
    assert not choice.mixed_precision and choice.autocast_dtype is None and "bfloat16" not in choice.reason


def test_cpu_runs_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    """bfloat16 autocast on the CPU only with native support (emulated it is slower than float32),
    said in the reason the user sees; the probabilities come back as float32 either way."""
    import CardiacAI.inference as inference

    monkeypatch.setattr(inference, "cpu_has_native_bfloat16", lambda: False)
    plain = choose_device(prefer_gpu=False)
    assert plain.autocast_dtype is None and not plain.mixed_precision
    monkeypatch.setattr(inference, "cpu_has_native_bfloat16", lambda: True)
    fast = choose_device(prefer_gpu=False)
    assert fast.autocast_dtype == "bfloat16" and fast.mixed_precision and "bfloat16" in fast.reason
    image, ball = _ball_image(shape=(30, 40, 50))
    volume = image.array.astype(np.float32) / 1000.0
    for device in (plain, fast):
        probs = sliding_window_logits(volume, _ThresholdNet().eval(), roi_size=(16, 24, 24), device=device)
        assert probs.dtype == np.float32
        assert np.array_equal(probs.argmax(axis=0) == 1, ball)


class _RecordingConvNet(torch.nn.Module):
    """Two 3D convolutions (the layers the memory layout changes) that record each window's layout."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv3d(8, 3, 3, padding=1))
        self.channels_last = []

    def forward(self, x):
        self.channels_last.append(x.is_contiguous(memory_format=torch.channels_last_3d))
        return self.net(x)


def test_cpu_windows_run_channels_last_with_the_same_result(monkeypatch):
    """On the CPU each window reaches the network channels-last (the faster oneDNN layout) and the
    probabilities are those of the default layout; load_network keeps CPU weights channels-last too."""
    import CardiacAI.inference as inference
    from CardiacAI.models import ModelCatalog
    from CardiacAI.segmentation import load_network

    image, _ = _ball_image(shape=(30, 40, 50))
    volume = image.array.astype(np.float32) / 1000.0
    device = inference.DeviceChoice("cpu", "CPU (test): float32")
    results = {}
    for flag in (False, True):
        monkeypatch.setattr(inference, "CPU_CHANNELS_LAST", flag)
        net = _RecordingConvNet().eval()
        results[flag] = sliding_window_logits(volume, net, roi_size=(16, 24, 24), device=device)
        assert net.channels_last and all(layout == flag for layout in net.channels_last)
    assert np.allclose(results[True], results[False], atol=1e-5)
    entry = ModelCatalog.load().default_for("whole-heart")
    weights = [p for p in load_network(entry, "cpu").parameters() if p.dim() == 5]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in weights)


def test_labels_from_probabilities_is_argmax_with_numpys_ties_and_nan():
    from CardiacAI.inference import labels_from_probabilities

    rng = np.random.default_rng(4)
    probs = rng.random((6, 7, 9, 11)).astype(np.float32)
    probs[2, :3] = probs[4, :3]  # ties: the lower class wins
    probs[:, 5, 5, 5] = probs[3, 5, 5, 5]  # all equal: class 0
    labels = labels_from_probabilities(probs)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, probs.argmax(axis=0))
    probs[4, 1, 1, 1] = np.nan
    np.testing.assert_array_equal(labels_from_probabilities(probs), probs.argmax(axis=0))
