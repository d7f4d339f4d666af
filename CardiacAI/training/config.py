"""Training configuration: one JSON-serialisable dataclass that fully describes a training run."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from ..errors import InputError
# the generator's fields of view and protocols, without the generator (FOVS re-exported for the training CLI)
from ..synthetic import FOVS, PROTOCOLS  # noqa: F401

TASKS = ("whole-heart", "ima-aorta")


@dataclasses.dataclass
class GeneratorSettings:
    """How the synthetic generator (``CardiacAI.synthetic``) makes training and validation cases.

    Attributes
    ----------
    protocols: protocol -> relative weight; each case draws its protocol from this mix with a
        random generator seeded by the case seed (so a seed always gives the same case).
    synthseg_fraction: fraction of cases generated in SynthSeg mode (random intensities per label).
    fov: field of view passed to the generator ("chest", "cardiac", "heart_region", "narrow" or "random").
    extra: further ``GeneratorConfig`` keyword arguments, passed as they are.
    """

    protocols: dict[str, float] = dataclasses.field(default_factory=lambda: {"cta": 0.7, "chest_contrast": 0.3})
    synthseg_fraction: float = 0.0
    fov: str = "random"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainingConfig:
    """Everything that defines a training run (saved in the checkpoint and the model card).

    Spatial conventions: ``spacing_mm`` is (i, j, k) in mm like :class:`CardiacAI.image.Image`;
    ``patch_size`` is in array order (D, H, W) = (k, j, i) voxels. Images are resampled to
    ``spacing_mm`` and reoriented to the LPS-aligned grid (direction = identity: i -> L, j -> P,
    k -> S) before training, and inference must do the same. Intensities: HU clipped to
    ``intensity_window_hu`` and mapped linearly to ``intensity_range`` (default -1000..1000 HU -> -1..1).

    Seeds: training cases use seeds ``train_seed_start ... train_seed_start + train_cases - 1``,
    validation cases ``val_seeds``; the two must not overlap. ``seed`` drives everything random
    in training (weights, patch sampling, augmentation).

    Loss: ``loss`` is Dice + cross-entropy ("dicece") or Dice + focal ("dicefocal"), softmax over
    the classes. ``dice_batch`` computes one Dice per class over the whole batch instead of one per
    patch (nnU-Net's "batch Dice"): a thin structure such as an IMA covers a few dozen voxels of a
    patch, and per-patch Dice of such classes is too noisy to learn from in short CPU runs.
    ``class_weights`` (structure key -> weight, default 1) weight the cross-entropy/focal term.
    ``soft_targets`` (structure keys): these structures are learnt from the generator's partial-volume
    fractions (:meth:`CardiacAI.synthetic.SyntheticCase.task_fractions`) instead of their 0/1 labels,
    so the softmax says how much of a voxel is the structure and its trilinear interpolation onto a
    finer scan puts the wall between the model's voxels. For 2-3 mm IMAs on a 1 x 1 x 2 mm grid a
    perfect model of the 0/1 labels reaches Dice 0.62-0.85 on a 0.7 x 0.7 x 2.5 mm scan, of the
    fractions 0.75-0.93 (``benchmarks/resampling_ceiling.py``). Needs ``loss="dicece"``.
    ``init_from``: the model.pt (or checkpoint.pt) of an earlier run of the same network to start
    from (fine-tuning, or a second cosine cycle); the card records its sha256.

    Steps: ``steps`` optimiser steps of ``batch_size`` patches; ``max_minutes`` stops earlier on
    wall-clock time (training loop only, case generation excluded). The learning rate follows a
    linear warm-up over ``warmup_steps`` then a cosine decay to ``lr * min_lr_fraction`` at ``steps``.
    """

    task: str = "whole-heart"
    network: str = "densevnet"
    network_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    patch_size: tuple[int, int, int] = (48, 48, 48)
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)
    intensity_window_hu: tuple[float, float] = (-1000.0, 1000.0)
    intensity_range: tuple[float, float] = (-1.0, 1.0)
    batch_size: int = 2
    samples_per_case: int = 2
    loss: str = "dicece"
    dice_batch: bool = False
    class_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    soft_targets: tuple[str, ...] = ()
    init_from: str | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    min_lr_fraction: float = 0.05
    steps: int = 1000
    max_minutes: float | None = None
    val_every: int = 50
    checkpoint_every: int = 50
    patience: int | None = None
    min_delta: float = 0.0
    train_cases: int = 16
    train_seed_start: int = 0
    val_seeds: tuple[int, ...] = (100000, 100001, 100002)
    augment: bool = True
    seed: int = 12345
    threads: int = 2
    device: str = "auto"
    amp: bool = True
    sw_overlap: float = 0.25
    generator: GeneratorSettings = dataclasses.field(default_factory=GeneratorSettings)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def train_seeds(self) -> list[int]:
        """Seeds of the training cases."""
        return list(range(self.train_seed_start, self.train_seed_start + self.train_cases))

    def validate(self) -> "TrainingConfig":
        """Check the values; return self. Raises InputError naming the first bad value."""
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}", f"choose one of {list(TASKS)}")
        if len(self.patch_size) != 3 or min(self.patch_size) < 8:
            raise InputError(f"patch size must be three sizes >= 8 voxels, got {list(self.patch_size)}")
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise InputError(f"spacing must be three positive values in mm, got {list(self.spacing_mm)}")
        lo, hi = self.intensity_window_hu
        if not hi > lo:
            raise InputError(f"the intensity window {lo}..{hi} HU is empty", "give the lower bound first")
        for name in ("batch_size", "samples_per_case", "steps", "val_every", "checkpoint_every", "train_cases",
                     "threads"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"learning rate must be positive, got {self.lr}")
        bad_weights = {k: w for k, w in self.class_weights.items() if not (float(w) >= 0 and math.isfinite(float(w)))}
        if bad_weights:
            raise InputError(f"class weights must be finite and >= 0, got {bad_weights}")
        if self.loss not in ("dicece", "dicefocal"):
            raise InputError(f"unknown loss {self.loss!r}", "choose dicece or dicefocal")
        if self.soft_targets and self.loss != "dicece":
            raise InputError(f"soft targets {list(self.soft_targets)} need the dicece loss, not {self.loss!r}",
                             "use --loss dicece with --soft-targets")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"unknown device {self.device!r}", "choose auto, cpu or cuda")
        if not self.val_seeds:
            raise InputError("no validation seeds given", "give at least one validation seed")
        overlap = sorted(set(self.val_seeds) & set(self.train_seeds))
        if overlap:
            raise InputError(
                f"validation seeds {overlap} are also training seeds",
                "choose validation seeds outside the training range "
                f"{self.train_seed_start}..{self.train_seed_start + self.train_cases - 1}",
            )
        gen = self.generator
        unknown = sorted(set(gen.protocols) - set(PROTOCOLS))
        if unknown or not gen.protocols or min(gen.protocols.values()) < 0 or sum(gen.protocols.values()) <= 0:
            raise InputError(f"bad protocol mix {gen.protocols}",
                             f"give positive weights for protocols among {list(PROTOCOLS)}")
        if not 0.0 <= gen.synthseg_fraction <= 1.0:
            raise InputError(f"synthseg fraction must be within 0..1, got {gen.synthseg_fraction}")
        if gen.fov not in FOVS:
            raise InputError(f"unknown field of view {gen.fov!r}", f"choose one of {list(FOVS)}")
        return self

    # -- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingConfig":
        """Inverse of :meth:`to_dict`. Raises InputError for unknown keys."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training setting(s) {unknown}")
        gen = data.pop("generator", None)
        gen_obj = GeneratorSettings(**gen) if isinstance(gen, dict) else (gen or GeneratorSettings())
        for key in ("patch_size", "spacing_mm", "intensity_window_hu", "intensity_range", "val_seeds",
                    "soft_targets"):
            if key in data and data[key] is not None:
                data[key] = tuple(data[key])
        return cls(generator=gen_obj, **data)


#: Settings that may change when a run is resumed (they do not change what is learnt step by step).
RESUMABLE_CHANGES = ("max_minutes", "patience", "min_delta", "val_every", "checkpoint_every",
                     "threads", "device")
