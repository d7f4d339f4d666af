"""Partial-volume (soft) labels: the generator's fractions, painted once per tube wall, and training on them.

A 2-3 mm IMA is 2-3 voxels of the 1 x 1 x 2 mm model grid; a model of its 0/1 labels cannot place the wall
between voxels (docs/segmentation.md, "Soft targets"). These tests check what that rests on: the canvas
keeps each tracked label's covered fraction consistent with the image, a tube's wall is partial volume
once, the generator's cases carry the IMAs' fractions, and training turns them into class probabilities.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from CardiacAI.errors import InputError
from CardiacAI.image import Image
from CardiacAI.synthetic import shapes
from CardiacAI.training import CaseStore, TrainingConfig, train
from CardiacAI.training.engine import build_loss, soft_target, soft_target_values

BACKGROUND_HU, VESSEL_HU = -100.0, 400.0


def canvas(track=(), n=(40, 40, 40), spacing=1.0) -> shapes.Canvas:
    """A 1 mm canvas centred on the origin, (K, J, I) = n, background fat."""
    axes = [(np.arange(m) - (m - 1) / 2) * spacing for m in n[::-1]]  # x (i), y (j), z (k)
    return shapes.Canvas(*axes, antialias_mm=spacing, background_value=BACKGROUND_HU,
                         intensity=lambda tissue, label: VESSEL_HU, track_fractions=track)


def test_canvas_fraction_is_the_covered_area_and_matches_the_image():
    c = canvas(track=[7])
    r = 2.5
    c.paint(shapes.cylinder_z(0.3, -0.2, r, -30, 30), [-r, -r, -30], [r, r, 30], 7, "blood")
    box, frac = c.fractions(7)
    full = np.zeros(c.image.shape, np.float32)
    full[box] = frac
    per_slice = full[10:30].sum(axis=(1, 2))  # 1 mm voxels: the covered area in mm²
    np.testing.assert_allclose(per_slice, np.pi * r * r, rtol=0.04)
    # the fraction is the vessel's share of the voxel's intensity
    np.testing.assert_allclose(c.image, BACKGROUND_HU + (VESSEL_HU - BACKGROUND_HU) * full, atol=1e-3)
    assert np.array_equal(c.labels == 7, full >= 0.5)


def test_a_later_shape_takes_its_share_and_the_fraction_box_grows():
    c = canvas(track=[7])
    c.paint(shapes.cylinder_z(0.0, 0.0, 3.0, -30, 0), [-3, -3, -30], [3, 3, 0], 7, "blood")
    c.paint(shapes.cylinder_z(5.0, 5.0, 3.0, 5, 30), [2, 2, 5], [8, 8, 30], 7, "blood")  # grows the box
    box, frac = c.fractions(7)
    full = np.zeros(c.image.shape, np.float32)
    full[box] = frac
    assert full[5].sum() > 20 and full[35].sum() > 20  # both paints kept
    before = full.copy()
    # a plate of another label over x > 0.5 mm (the canvas's x is at .5 mm offsets): the vessel is gone there
    c.paint(shapes.box([10.5, 0, 0], [10, 30, 40]), [0, -30, -40], [21, 30, 40], 3, "bone")
    box, frac = c.fractions(7)
    full[box] = frac
    x = c.x
    assert np.all(full[:, :, x > 1.5] == 0)
    np.testing.assert_array_equal(full[:, :, x < -0.5], before[:, :, x < -0.5])
    with pytest.raises(KeyError):
        c.fractions(3)
    assert canvas(track=[9]).fractions(9) is None


def test_a_tube_of_many_segments_is_painted_like_one_capsule():
    """Consecutive capsules overlap by a radius at each joint; painting both composited the wall's partial
    volume twice (a voxel half inside read three quarters vessel), so the tube looked thicker than its label."""
    start, end, r = np.array([-1.3, 0.4, -15.0]), np.array([2.1, -0.7, 15.0]), 1.4
    one, many = canvas(track=[7]), canvas(track=[7])
    one.paint_tube(np.array([start, end]), r, 7, "blood")
    many.paint_tube(start + np.linspace(0, 1, 11)[:, None] * (end - start), r, 7, "blood")  # 3 mm steps
    np.testing.assert_allclose(many.image, one.image, atol=0.05)
    np.testing.assert_array_equal(many.labels, one.labels)
    inside = np.pi * r * r * float(np.linalg.norm(end - start)) + 4 / 3 * np.pi * r ** 3  # mm³, with the caps
    for c in (one, many):  # 1 mm voxels: the fractions' sum is the volume (a box filter on a curved wall: +5 %)
        assert c.fractions(7)[1].sum() == pytest.approx(inside, rel=0.07)


@pytest.fixture(scope="module")
def ima_case():
    from CardiacAI.synthetic import GeneratorConfig, generate_case

    return generate_case(5, GeneratorConfig(protocol="cta", fov="cardiac", spacing_mm=(1.0, 1.0, 2.0)))


def test_generated_cases_carry_the_imas_fractions(ima_case):
    from scipy import ndimage

    labels = ima_case.task_labels("ima-aorta")
    fractions = ima_case.task_fractions("ima-aorta")
    assert sorted(fractions) == [1, 2]  # left and right IMA; the aorta and the regions keep 0/1 labels
    assert ima_case.task_fractions("whole-heart") == {}
    voxel = float(np.prod(labels.spacing))
    for value, fraction in fractions.items():
        f = fraction.array
        assert fraction.same_geometry(labels) and f.dtype == np.float32
        assert f.min() >= 0.0 and f.max() <= 1.0
        hard = labels.array == value
        # the fraction is the artery's share of each voxel: its sum is the artery's volume, which the
        # label counts to within its voxels (5-10 % here), and it is zero away from the artery
        assert f.sum() * voxel == pytest.approx(hard.sum() * voxel, rel=0.15)
        near = ndimage.binary_dilation(hard, iterations=2)
        assert np.all(f[~near] == 0)
        assert np.mean(f[hard] >= 0.5) > 0.9


def test_soft_target_gives_fractions_to_soft_classes_and_the_rest_to_the_label():
    label = torch.zeros((1, 1, 2, 2, 2), dtype=torch.long)
    label[0, 0, 0, 0, 0] = 1  # hard IMA voxel with fraction 0.6
    label[0, 0, 0, 0, 1] = 4  # aorta voxel the IMA covers 0.2 of
    fractions = torch.zeros((1, 2, 2, 2, 2))
    fractions[0, 0, 0, 0, 0] = 0.6
    fractions[0, 0, 0, 0, 1] = 0.2
    fractions[0, 1, 1, 1, 1] = 0.3  # a right IMA fringe voxel labelled background
    target = soft_target(label, fractions, [1, 2], 6)
    torch.testing.assert_close(target.sum(dim=1), torch.ones((1, 2, 2, 2)))
    assert target[0, :, 0, 0, 0].tolist() == pytest.approx([0.4, 0.6, 0, 0, 0, 0])
    assert target[0, :, 0, 0, 1].tolist() == pytest.approx([0, 0.2, 0, 0, 0.8, 0])
    assert target[0, :, 1, 1, 1].tolist() == pytest.approx([0.7, 0, 0.3, 0, 0, 0])
    assert target[0, :, 1, 0, 0].tolist() == [1, 0, 0, 0, 0, 0]


def soft_config(**changes) -> TrainingConfig:
    base = dict(task="ima-aorta", soft_targets=("left_internal_mammary_artery", "right_internal_mammary_artery"),
                class_weights={"left_internal_mammary_artery": 10.0}, dice_batch=True)
    base.update(changes)
    return TrainingConfig(**base).validate()


def test_soft_loss_is_lowest_at_the_fractions_and_takes_label_values_too():
    loss = build_loss(soft_config(), 6, "cpu")
    label = torch.zeros((2, 1, 8, 8, 8), dtype=torch.long)
    label[:, :, 2:6, 3:5, 3:5] = 1
    fractions = torch.zeros((2, 2, 8, 8, 8))
    fractions[:, 0, 2:6, 2:6, 2:6] = 0.3
    fractions[:, 0, 2:6, 3:5, 3:5] = 0.9
    target = soft_target(label, fractions, [1, 2], 6)
    hardened = torch.nn.functional.one_hot(target.argmax(dim=1), 6).permute(0, 4, 1, 2, 3).float()
    at_fraction = float(loss(torch.log(target.clamp(min=1e-4)), target))
    at_hardened = float(loss(torch.log(hardened.clamp(min=1e-4)), target))
    assert at_fraction < at_hardened - 0.5
    # validation passes label values: the same as their one-hot probabilities
    logits = torch.randn((2, 6, 8, 8, 8), generator=torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(label[:, 0], 6).permute(0, 4, 1, 2, 3).float()
    assert float(loss(logits, label)) == pytest.approx(float(loss(logits, one_hot)), rel=1e-6)


def test_soft_target_settings_are_checked():
    assert soft_target_values(soft_config()) == [1, 2]
    with pytest.raises(InputError, match="dicece"):
        soft_config(loss="dicefocal")
    with pytest.raises(InputError, match="unknown or derived"):
        soft_target_values(soft_config(soft_targets=("peri_ima_region",)))
    with pytest.raises(InputError, match="unknown or derived"):
        soft_target_values(soft_config(soft_targets=("lima",)))


def test_cli_reads_soft_targets():
    import argparse

    from CardiacAI.training.cli import add_train_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "-o", "x", "--task", "ima-aorta", "--soft-targets",
                              "left_internal_mammary_artery", "right_internal_mammary_artery"])
    assert config_from_args(args).soft_targets == ("left_internal_mammary_artery", "right_internal_mammary_artery")


@dataclasses.dataclass
class TubeCase:
    image: Image
    labels: Image
    fractions: dict
    present: dict
    parameters: dict

    def task_labels(self, task: str) -> Image:
        return self.labels

    def task_fractions(self, task: str) -> dict:
        return self.fractions


class TubeSource:
    """Test fake of the generator contract with fractions: a bright left IMA-like tube and an aorta-like one,
    painted by the generator's own canvas, so image, label and fractions agree as in a generated case."""

    cache_key = "tubes-v1"

    def __init__(self, with_fractions: bool = True):
        self.with_fractions = with_fractions
        self.calls = 0

    def settings_for(self, seed: int) -> dict:
        return {"protocol": "cta", "fake": True}

    def __call__(self, seed: int) -> TubeCase:
        self.calls += 1
        rng = np.random.default_rng(seed)
        c = canvas(track=[1], n=(24, 24, 24), spacing=2.0)
        x0, y0 = rng.uniform(-12, -4, 2)
        c.paint(shapes.cylinder_z(x0, y0, 2.2, -30, 30), [x0 - 3, y0 - 3, -30], [x0 + 3, y0 + 3, 30], 1, "blood")
        c.paint(shapes.cylinder_z(8.0, 6.0, 7.0, -30, 30), [1, -1, -30], [15, 13, 30], 4, "blood")
        image = c.image + rng.normal(0, 10, c.image.shape)
        geometry = dict(spacing=(2.0, 2.0, 2.0), origin=(float(c.x[0]), float(c.y[0]), float(c.z[0])))
        img = Image(array=image.astype(np.int16), modality="CT", **geometry)
        box, frac = c.fractions(1)
        full = np.zeros(c.image.shape, np.float32)
        full[box] = frac
        fractions = {1: img.with_array(full)} if self.with_fractions else {}
        return TubeCase(img, img.with_array(c.labels.copy()), fractions, {"ima-aorta": {}}, {"seed": seed})


def test_case_store_keeps_fractions_and_remakes_older_cache_files(tmp_path):
    source = TubeSource()
    store = CaseStore(source, "ima-aorta", (2.0, 2.0, 2.0), tmp_path, need_fractions=True)
    case = store.get(1)
    assert sorted(case.fractions) == [1] and case.fractions[1].dtype == np.uint8
    edge = (case.fractions[1] > 0) & (case.fractions[1] < 255)
    assert edge.sum() > 10  # partial volume kept, not rounded to the label
    again = CaseStore(source, "ima-aorta", (2.0, 2.0, 2.0), tmp_path, need_fractions=True).get(1)
    np.testing.assert_array_equal(again.fractions[1], case.fractions[1])
    assert source.calls == 1
    # a file cached before cases kept fractions is made again when they are needed
    path = next(tmp_path.glob("*.npz"))
    with np.load(path) as data:
        np.savez_compressed(path, image=data["image"], label=data["label"], meta=data["meta"])
    assert CaseStore(source, "ima-aorta", (2.0, 2.0, 2.0), tmp_path).get(1).fractions == {}
    remade = CaseStore(source, "ima-aorta", (2.0, 2.0, 2.0), tmp_path, need_fractions=True).get(1)
    assert source.calls == 2 and sorted(remade.fractions) == [1]


def tube_config(**changes) -> TrainingConfig:
    base = dict(task="ima-aorta", network="unet", network_params={"channels": [4, 8, 16], "strides": [2, 2]},
                patch_size=(16, 16, 16), spacing_mm=(2.0, 2.0, 2.0), batch_size=2, samples_per_case=2,
                steps=4, val_every=2, checkpoint_every=2, train_cases=2, val_seeds=(50,), warmup_steps=1,
                threads=1, seed=3, soft_targets=("left_internal_mammary_artery",))
    base.update(changes)
    return TrainingConfig(**base)


def test_training_on_soft_targets_runs_and_differs_from_label_training(tmp_path):
    soft = train(tube_config(), tmp_path / "soft", source=TubeSource(), progress=False)
    hard = train(tube_config(soft_targets=()), tmp_path / "hard", source=TubeSource(), progress=False)
    assert soft.steps == 4
    train_losses = [[r["loss"] for r in run.history if r["event"] == "train"] for run in (soft, hard)]
    assert train_losses[0] != train_losses[1]  # the fractions reach the loss
    from CardiacAI.training import load_model_card

    assert load_model_card(soft.card_path)["training"]["config"]["soft_targets"] == ["left_internal_mammary_artery"]
    with pytest.raises(InputError, match="no partial-volume fractions for left_internal_mammary_artery"):
        train(tube_config(), tmp_path / "none", source=TubeSource(with_fractions=False), progress=False)
