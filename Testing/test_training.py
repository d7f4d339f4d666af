"""Tests of the training pipeline (CardiacAI.training): end-to-end run, card, resume, early stopping,
determinism and learning, on a small fake case source (ellipsoids in noise) so they run in seconds.
The recorded run with the real generator is in docs/training/."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from CardiacAI.errors import InputError, ModelError
from CardiacAI.image import Image
from CardiacAI.labels import get_label_set
from CardiacAI.training import (
    CaseStore,
    TrainingConfig,
    load_model,
    load_model_card,
    sha256_file,
    train,
    validate_model_card,
)

WHOLE_HEART = [s.key for s in get_label_set("whole-heart").structures]


@dataclasses.dataclass
class FakeCase:
    image: Image
    labels: Image
    present: dict
    parameters: dict

    def task_labels(self, task: str) -> Image:
        return self.labels


class EllipsoidSource:
    """Test fake of the generator contract: three bright ellipsoids (labels 1-3) in noisy 'soft tissue'.

    Each label has its own HU, so the task is trivially learnable from intensity alone.
    """

    cache_key = "ellipsoids-v1"

    def __init__(self, shape=(24, 24, 24), spacing=(2.0, 2.0, 2.0)):
        self.shape, self.spacing = shape, spacing
        self.calls = 0

    def settings_for(self, seed: int) -> dict:
        return {"protocol": "cta", "fake": True}

    def __call__(self, seed: int) -> FakeCase:
        self.calls += 1
        rng = np.random.default_rng(seed)
        k, j, i = np.indices(self.shape)
        image = rng.normal(40, 20, self.shape)
        label = np.zeros(self.shape, np.uint8)
        for value, hu in ((1, 300.0), (2, 600.0), (3, -400.0)):
            centre = rng.uniform(6, np.array(self.shape) - 6)
            radii = rng.uniform(3, 5, 3)
            inside = (((k - centre[0]) / radii[0]) ** 2 + ((j - centre[1]) / radii[1]) ** 2
                      + ((i - centre[2]) / radii[2]) ** 2) <= 1
            label[inside] = value
            image[inside] = rng.normal(hu, 20, int(inside.sum()))
        img = Image(array=image.astype(np.int16), spacing=self.spacing, modality="CT")
        present = {"whole-heart": {key: key in WHOLE_HEART[:3] for key in WHOLE_HEART}}
        return FakeCase(img, img.with_array(label), present, {"seed": seed})


def tiny_config(**changes) -> TrainingConfig:
    base = dict(task="whole-heart", network="unet", network_params={"channels": [4, 8, 16], "strides": [2, 2]},
                patch_size=(16, 16, 16), spacing_mm=(2.0, 2.0, 2.0), batch_size=2, samples_per_case=2,
                steps=6, val_every=3, checkpoint_every=3, train_cases=3, train_seed_start=0, val_seeds=(50,),
                warmup_steps=2, threads=1, seed=7, augment=True)
    base.update(changes)
    return TrainingConfig(**base)


def losses(history, kind="train", field="loss"):
    return [r[field] for r in history if r["event"] == kind]


def test_end_to_end_writes_model_and_valid_card(tmp_path):
    torch.set_num_threads(1)
    result = train(tiny_config(), tmp_path / "run", source=EllipsoidSource(), progress=False, command="pytest run")
    assert result.model_path.is_file() and result.card_path.is_file() and result.log_path.is_file()
    card = load_model_card(result.card_path)  # schema + size + sha256
    assert card["model_file"]["sha256"] == sha256_file(result.model_path)
    assert card["model_file"]["size_bytes"] == result.model_path.stat().st_size
    assert card["training"]["command"] == "pytest run"
    assert card["training"]["steps"] == 6 and card["training"]["stopped_because"] == "steps"
    assert card["metrics"]["validation_seeds"] == [50]
    assert [entry["value"] for entry in card["labels"]] == list(range(1, 11))
    assert card["network"]["out_channels"] == 11
    assert set(card["metrics"]["dice"]) == set(WHOLE_HEART)
    # Structures absent from the validation case have no Dice (null), present ones a number.
    assert card["metrics"]["dice"]["pulmonary_artery"] is None
    assert isinstance(card["metrics"]["dice"]["pulmonary_veins"], float)
    # weights-only loading rebuilds the same network
    model, _ = load_model(result.card_path)
    x = torch.zeros(1, 1, 16, 16, 16)
    assert model(x).shape == (1, 11, 16, 16, 16)
    # the log has one train record per step and validations at 0, 3, 6
    records = [json.loads(line) for line in result.log_path.read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if r["event"] == "val"] == [0, 3, 6]


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    train(tiny_config(steps=3), tmp_path / "run", source=EllipsoidSource(), progress=False)
    with pytest.raises(InputError, match="--resume"):
        train(tiny_config(steps=3), tmp_path / "run", source=EllipsoidSource(), progress=False)


def test_same_seed_same_losses_and_different_seed_differs(tmp_path):
    a = train(tiny_config(), tmp_path / "a", source=EllipsoidSource(), progress=False)
    b = train(tiny_config(), tmp_path / "b", source=EllipsoidSource(), progress=False)
    c = train(tiny_config(seed=8), tmp_path / "c", source=EllipsoidSource(), progress=False)
    assert losses(a.history) == losses(b.history)
    assert losses(a.history, "val", "val_loss") == losses(b.history, "val", "val_loss")
    assert losses(a.history) != losses(c.history)


def test_resume_continues_from_checkpoint_step_and_reproduces(tmp_path):
    full = train(tiny_config(), tmp_path / "full", source=EllipsoidSource(), progress=False)
    # Simulate a crash during step 4 (after the step-3 checkpoint) by raising from the record hook.
    part_dir = tmp_path / "part"
    with pytest.raises(_Interrupt):
        train(tiny_config(), part_dir, source=EllipsoidSource(), progress=False, on_record=_crash_at_train_step(4))
    ckpt = torch.load(part_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3
    seen = []
    resumed = train(tiny_config(), part_dir, source=EllipsoidSource(), progress=False, resume=True,
                    on_record=lambda r: seen.append(r))
    first_train_step = min(r["step"] for r in seen if r["event"] == "train")
    assert first_train_step == 4  # continued, not restarted from 0
    assert resumed.steps == 6
    np.testing.assert_allclose(losses(resumed.history), losses(full.history), rtol=1e-5, atol=0)
    np.testing.assert_allclose(losses(resumed.history, "val", "val_loss"), losses(full.history, "val", "val_loss"),
                               rtol=1e-5, atol=0)


class _Interrupt(Exception):
    pass


def _crash_at_train_step(step: int):
    def hook(entry):
        if entry["event"] == "train" and entry["step"] == step:
            raise _Interrupt

    return hook


def test_resume_refuses_changed_settings_and_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match="no checkpoint"):
        train(tiny_config(), tmp_path / "none", source=EllipsoidSource(), progress=False, resume=True)
    train(tiny_config(steps=3), tmp_path / "run", source=EllipsoidSource(), progress=False)
    with pytest.raises(InputError, match="lr"):
        train(tiny_config(steps=3, lr=0.5), tmp_path / "run", source=EllipsoidSource(), progress=False, resume=True)


def test_early_stopping_triggers(tmp_path):
    # min_delta above any possible Dice gain: the second validation cannot improve, patience 1 stops.
    result = train(tiny_config(steps=30, val_every=2, patience=1, min_delta=1.5), tmp_path / "run",
                   source=EllipsoidSource(), progress=False)
    assert result.stopped_because == "early_stopping"
    assert result.steps == 2
    assert load_model_card(result.card_path)["training"]["stopped_because"] == "early_stopping"


def test_time_budget_stops_training(tmp_path):
    result = train(tiny_config(steps=1000, max_minutes=0.0), tmp_path / "run", source=EllipsoidSource(),
                   progress=False)
    assert result.stopped_because == "time_budget" and result.steps == 0
    load_model_card(result.card_path)


def test_loss_goes_down_and_dice_goes_up_on_learnable_task(tmp_path):
    torch.set_num_threads(2)
    cfg = tiny_config(network="unet", network_params={"channels": [8, 16, 32], "strides": [2, 2]},
                      steps=40, val_every=40, checkpoint_every=40, lr=1e-2, warmup_steps=2, augment=False,
                      batch_size=4, samples_per_case=2, train_cases=4)
    result = train(cfg, tmp_path / "run", source=EllipsoidSource(), progress=False)
    train_loss = losses(result.history)
    assert np.mean(train_loss[-5:]) < 0.7 * np.mean(train_loss[:5])
    val = [r for r in result.history if r["event"] == "val"]
    assert val[-1]["val_loss"] < val[0]["val_loss"]
    assert val[-1]["mean_dice"] > val[0]["mean_dice"] + 0.2


def test_disk_cache_avoids_regeneration(tmp_path):
    source = EllipsoidSource()
    store = CaseStore(source, "whole-heart", (2.0, 2.0, 2.0), tmp_path / "cache")
    first = store.get(3)
    assert source.calls == 1 and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    again = CaseStore(source, "whole-heart", (2.0, 2.0, 2.0), tmp_path / "cache").get(3)
    assert source.calls == 1
    np.testing.assert_array_equal(first.image_hu, again.image_hu)
    np.testing.assert_array_equal(first.label, again.label)
    assert again.settings == {"protocol": "cta", "fake": True}


class RefusingSource(EllipsoidSource):
    """A source that must not be asked for a case (everything is in the disk cache)."""

    def __call__(self, seed: int) -> FakeCase:
        raise AssertionError(f"case {seed} was generated again")


def test_prefetch_in_worker_processes_makes_the_same_cases_and_fills_the_cache(tmp_path):
    source = EllipsoidSource()
    store = CaseStore(source, "whole-heart", (2.0, 2.0, 2.0), tmp_path / "cache")
    store.prefetch([1, 2, 3, 50], workers=3)
    assert source.calls == 0  # made in the forked workers, not in this process
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4
    one_by_one = CaseStore(EllipsoidSource(), "whole-heart", (2.0, 2.0, 2.0))
    for seed in (1, 2, 3, 50):
        np.testing.assert_array_equal(store.get(seed).image_hu, one_by_one.get(seed).image_hu)
        np.testing.assert_array_equal(store.get(seed).label, one_by_one.get(seed).label)
    # what the disk cache holds is not made again, in workers or here
    CaseStore(RefusingSource(), "whole-heart", (2.0, 2.0, 2.0), tmp_path / "cache").prefetch([1, 2, 3, 50], workers=3)


def test_training_is_the_same_run_for_any_number_of_data_workers(tmp_path):
    one = train(tiny_config(), tmp_path / "one", source=EllipsoidSource(), progress=False)
    three = train(tiny_config(), tmp_path / "three", source=EllipsoidSource(), progress=False, data_workers=3)
    assert losses(one.history) == losses(three.history)
    assert losses(one.history, "val", "val_loss") == losses(three.history, "val", "val_loss")


def test_random_affine_resamples_on_the_requested_device():
    from CardiacAI.training.transforms import train_transforms

    affine = train_transforms((16, 16, 16), 4, 2, augment=True, device="cpu").transforms[1]
    assert type(affine).__name__ == "RandAffined"
    assert str(affine.rand_affine.resampler.device) == "cpu"
    assert train_transforms((16, 16, 16), 4, 2, augment=True).transforms[1].rand_affine.resampler.device is None


def test_cases_are_resampled_to_training_spacing(tmp_path):
    store = CaseStore(EllipsoidSource(shape=(20, 24, 24), spacing=(1.0, 1.0, 2.0)), "whole-heart", (2.0, 2.0, 2.0))
    case = store.get(1)
    assert case.spacing_mm == (2.0, 2.0, 2.0)
    assert case.image_hu.shape == (20, 12, 12) and case.label.shape == (20, 12, 12)
    assert set(np.unique(case.label)) <= {0, 1, 2, 3}


def test_config_rejects_overlapping_seeds_and_bad_patch(tmp_path):
    with pytest.raises(InputError, match="also training seeds"):
        tiny_config(val_seeds=(1,)).validate()
    # the tiny U-Net down-samples twice: patch sizes must be multiples of 4
    with pytest.raises(InputError, match="multiple of 4"):
        train(tiny_config(patch_size=(18, 16, 16)), tmp_path / "run", source=EllipsoidSource(), progress=False)


# -- model card -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("card") / "run"
    return train(tiny_config(steps=2, val_every=2), out, source=EllipsoidSource(), progress=False)


def test_card_missing_field_is_rejected(trained_run):
    card = json.loads(trained_run.card_path.read_text())
    del card["input"]["spacing_mm"]
    with pytest.raises(ModelError, match="spacing_mm"):
        validate_model_card(card)
    card = json.loads(trained_run.card_path.read_text())
    del card["metrics"]
    with pytest.raises(ModelError, match="metrics"):
        validate_model_card(card)


def test_card_sha256_mismatch_is_rejected(trained_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(trained_run.output_dir, folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["model_file"]["sha256"] = "0" * 64
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256"):
        load_model_card(folder / "model_card.json")
    # the same bytes count but altered content: also refused
    shutil.copy(trained_run.card_path, folder / "model_card.json")
    data = bytearray((folder / "model.pt").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model_card(folder / "model_card.json")


# -- command line and plots -------------------------------------------------------------------------

def test_cli_parses_options_into_config():
    import argparse

    from CardiacAI.training.cli import add_train_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "-o", "x", "--network", "se_swin", "--patch-size", "32,48,48",
                              "--spacing", "2", "--protocols", "cta:3,gated_noncontrast:1",
                              "--val-seeds", "900-902", "--network-params", '{"window": 2}', "--max-minutes", "15"])
    cfg = config_from_args(args)
    assert cfg.patch_size == (32, 48, 48) and cfg.spacing_mm == (2.0, 2.0, 2.0)
    assert cfg.generator.protocols == {"cta": 3.0, "gated_noncontrast": 1.0}
    assert cfg.val_seeds == (900, 901, 902) and cfg.network_params == {"window": 2}
    assert cfg.max_minutes == 15.0


def test_cli_reports_bad_settings_as_one_line_error(tmp_path, capsys):
    from CardiacAI.training.cli import main

    status = main(["train", "-o", str(tmp_path / "run"), "--train-cases", "5", "--val-seeds", "2,3"])
    assert status == 2
    err = capsys.readouterr().err
    assert "validation seeds [2, 3] are also training seeds" in err and "Traceback" not in err
    assert main(["train", "-o", str(tmp_path / "run"), "--network-params", "[1"]) == 2


def test_plots_are_written(trained_run, tmp_path):
    from CardiacAI.training.plots import plot_training_log

    paths = plot_training_log(trained_run.log_path, tmp_path / "run")
    assert [p.name for p in paths] == ["run_loss.png", "run_dice.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_cli_trains_with_the_real_generator(tmp_path, capsys):
    """The whole command with CardiacAI.synthetic: 2 tiny training cases at 3 mm, 4 steps."""
    pytest.importorskip("CardiacAI.synthetic")
    from CardiacAI.training.cli import main

    out = tmp_path / "run"
    status = main(["train", "-o", str(out), "--network", "unet", "--network-params",
                   '{"channels": [4, 8, 16], "strides": [2, 2]}', "--patch-size", "16", "--spacing", "3",
                   "--steps", "4", "--val-every", "2", "--train-cases", "2", "--val-seeds", "1000",
                   "--fov", "narrow", "--threads", "2", "--no-progress", "--data-workers", "2",
                   "--cache-dir", str(tmp_path / "cache")])
    assert status == 0, capsys.readouterr().err
    card = load_model_card(out / "model_card.json")
    assert card["training"]["command"].split()[-1] == str(tmp_path / "cache")
    assert "--spacing 3" in card["training"]["command"]
    assert card["input"]["spacing_mm"] == [3.0, 3.0, 3.0]
    assert sum(card["training"]["generator"]["protocol_counts"].values()) == 2
    assert card["training"]["generator"]["settings"]["fov"] == "narrow"
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


def test_recorded_run_card_matches_its_model_and_shows_learning():
    """docs/training holds the recorded 15-minute CPU run; its card must validate against its model.pt."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "training"
    if not (docs / "model_card.json").is_file():
        pytest.skip("the recorded run is not in docs/training")
    model, card = load_model(docs / "model_card.json")
    assert card["task"] == "whole-heart" and card["network"]["name"] == "densevnet"
    assert card["metrics"]["val_loss"] < card["metrics"]["initial"]["val_loss"]
    assert card["metrics"]["mean_dice"] > card["metrics"]["initial"]["mean_dice"]
    records = [json.loads(line) for line in (docs / "whole-heart-densevnet_log.jsonl").read_text().splitlines()]
    best = next(r for r in records if r["event"] == "val" and r["step"] == card["metrics"]["best_step"])
    assert best["dice"] == card["metrics"]["dice"]
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 48, 48, 48)).shape == (1, 11, 48, 48, 48)


def test_class_weights_reach_the_loss_and_derived_regions_are_never_trained():
    import torch

    from CardiacAI.training.config import TrainingConfig
    from CardiacAI.training.engine import build_loss, class_weight_vector

    cfg = TrainingConfig(task="ima-aorta", class_weights={"left_internal_mammary_artery": 10.0}).validate()
    # values: 1 LIMA, 2 RIMA, 3 peri-IMA (derived), 4 aorta, 5 periaortic (derived)
    assert class_weight_vector(cfg, 6) == [1.0, 10.0, 1.0, 0.0, 1.0, 0.0]
    with pytest.raises(InputError, match="unknown structure"):
        class_weight_vector(TrainingConfig(task="ima-aorta", class_weights={"lima": 2.0}), 6)
    with pytest.raises(InputError, match="finite and >= 0"):
        TrainingConfig(task="ima-aorta", class_weights={"aorta": -1.0}).validate()
    # a missed IMA voxel costs more with its class weighted up
    target = torch.zeros((1, 1, 4, 4, 4), dtype=torch.long)
    target[0, 0, 1, 1, 1] = 1
    logits = torch.zeros((1, 6, 4, 4, 4))
    logits[:, 0] = 2.0
    plain = build_loss(TrainingConfig(task="ima-aorta"), 6, "cpu")(logits, target)
    weighted = build_loss(cfg, 6, "cpu")(logits, target)
    assert float(weighted) > float(plain) + 0.1


def test_init_from_refuses_missing_or_mismatched_weights(tmp_path):
    from CardiacAI.networks import build_network
    from CardiacAI.training.engine import _load_initial_weights

    net = build_network("unet", 1, 6, channels=[4, 8], strides=[2])
    with pytest.raises(InputError, match="no weights to start from"):
        _load_initial_weights(net, str(tmp_path / "missing.pt"))
    other = build_network("unet", 1, 11, channels=[4, 8], strides=[2])
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(InputError, match="do not fit"):
        _load_initial_weights(net, str(tmp_path / "other.pt"))
    same = build_network("unet", 1, 6, channels=[4, 8], strides=[2])
    torch.save({"model": same.state_dict(), "optimizer": {}}, tmp_path / "checkpoint.pt")
    _load_initial_weights(net, str(tmp_path / "checkpoint.pt"))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), same.state_dict().values()))
