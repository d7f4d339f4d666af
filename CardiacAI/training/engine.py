"""The training loop: synthetic cases -> balanced patches -> Dice+CE -> AdamW/cosine -> validated model + card.

Follows the whole-heart paper's recipe (Dice + cross-entropy loss, Adam at lr 1e-3; here AdamW
with warm-up and cosine decay) with MONAI throughout: ``RandCropByLabelClassesd`` patch sampling,
``DiceCELoss``/``DiceFocalLoss``, ``sliding_window_inference`` on whole validation cases and
``compute_dice`` (the function behind ``DiceMetric``) per structure, ``set_determinism`` for seeds.

Reproducibility: the batch of step ``s`` (which cases, which patches, which augmentation) is
drawn from a random generator seeded by ``(config.seed, s)``, so a resumed run sees exactly the
batches an uninterrupted run would have seen; the checkpoint holds model, optimiser, scheduler,
AMP scaler and RNG states.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError, ModelError
from ..io.atomic import atomic_output
from .config import RESUMABLE_CHANGES, TrainingConfig
from .data import CaseSource, CaseStore, GeneratorCaseSource, case_fractions
from .model_card import sha256_file, write_model_card
from .preprocessing import normalise_intensity
from .transforms import FRACTIONS_KEY, class_indices, pad_channels_to_patch, pad_to_patch, train_transforms

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
CARD_NAME = "model_card.json"
LOG_NAME = "training_log.jsonl"


@dataclasses.dataclass
class TrainingResult:
    """What :func:`train` produced.

    Attributes: output folder; paths of the weights (best validation Dice), card, JSONL log and
    checkpoint; the step reached; why training stopped ("steps", "time_budget",
    "early_stopping"); the log records; the best step and its mean validation Dice.
    """

    output_dir: Path
    model_path: Path
    card_path: Path
    log_path: Path
    checkpoint_path: Path
    steps: int
    stopped_because: str
    history: list[dict[str, Any]]
    best_step: int
    best_mean_dice: float | None


def _label_structures(task: str) -> list[dict[str, Any]]:
    from ..labels import get_label_set

    return [{"value": int(s.value), "key": s.key, "name": s.name} for s in get_label_set(task).structures]


def _machine(device: str, threads: int) -> dict[str, Any]:
    import monai
    import torch

    from ..platform_info import cpu_model

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    return {"device": device, "cpu": cpu_model(), "threads": int(threads),
            "torch": torch.__version__, "monai": monai.__version__,
            "python": platform.python_version(), "gpu": gpu}


def _choose_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was requested but no CUDA GPU is available to this PyTorch",
                         "use --device cpu or auto, or install a CUDA build of PyTorch")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _load_initial_weights(model, path: str) -> None:
    """Start from the weights of an earlier run (its model.pt, or the ``model`` of a checkpoint.pt).

    Raises InputError when the file is missing or its weights do not fit the network.
    """
    import torch

    file = Path(path)
    if not file.is_file():
        raise InputError(f"no weights to start from at {file}", "give the model.pt of an earlier run")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and "optimizer" in state:
        state = state["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"the weights in {file} do not fit this network: {exc}",
                         "start from a run with the same --network, --network-params and task") from None


def class_weight_vector(config: TrainingConfig, num_classes: int) -> list[float]:
    """Per-class weights (index = label value) of the cross-entropy/focal term: 1 for background and
    every structure, ``config.class_weights[key]`` where given, 0 for derived structures (perivascular
    regions), which are computed after inference and never predicted.

    Raises InputError for a key that is not a structure of the task.
    """
    from ..labels import get_label_set

    weights = [1.0] * num_classes
    by_key = {s.key: s for s in get_label_set(config.task).structures}
    unknown = sorted(set(config.class_weights) - set(by_key))
    if unknown:
        raise InputError(f"class weights for unknown structure(s) {unknown}",
                         f"use structure keys of the {config.task} label set: {sorted(by_key)}")
    for key, s in by_key.items():
        if s.derived_from:
            weights[s.value] = 0.0
        elif key in config.class_weights:
            weights[s.value] = float(config.class_weights[key])
    return weights


def soft_target_values(config: TrainingConfig) -> list[int]:
    """Label values of ``config.soft_targets`` (in the order given).

    Raises InputError for a key that is not a structure of the task, or a derived one (a perivascular
    region is computed after inference, never predicted).
    """
    from ..labels import get_label_set

    by_key = {s.key: s for s in get_label_set(config.task).structures}
    bad = sorted(k for k in config.soft_targets if k not in by_key or by_key[k].derived_from)
    if bad:
        raise InputError(f"soft targets for unknown or derived structure(s) {bad}",
                         f"use predicted structure keys of the {config.task} label set: "
                         f"{sorted(k for k, s in by_key.items() if not s.derived_from)}")
    return [int(by_key[k].value) for k in config.soft_targets]


def soft_target(label, fractions, soft_values: Sequence[int], num_classes: int):
    """Class probabilities (N, C, D, H, W) float32 from a label map and partial-volume fractions.

    ``label``: (N, 1, D, H, W) integer tensor of label values; ``fractions``: (N, S, D, H, W) float
    tensor, the covered fraction (0-1) of each of the ``soft_values`` structures. A soft structure's
    channel is its fraction; the rest of the voxel (1 - the soft fractions, which are scaled down
    where they sum above 1) goes to the voxel's label, or to background where that label is itself
    a soft structure. Every voxel's probabilities sum to 1.
    """
    import torch
    from monai.networks.utils import one_hot

    target = one_hot(label, num_classes).float()
    idx = list(soft_values)
    target[:, 0] += target[:, idx].sum(dim=1)
    target[:, idx] = 0.0
    fractions = fractions.float()
    total = fractions.sum(dim=1, keepdim=True)
    fractions = fractions / torch.clamp(total, min=1.0)
    target *= 1.0 - torch.clamp(total, max=1.0)
    target[:, idx] += fractions
    return target


def build_loss(config: TrainingConfig, num_classes: int, device: str):
    """The training loss ``loss(logits (N, C, D, H, W), target)`` -> scalar tensor; ``target`` is
    (N, 1, D, H, W) label values or, with ``config.soft_targets``, also (N, C, D, H, W) class
    probabilities (:func:`soft_target`).

    Dice (MONAI ``DiceLoss``, softmax, one Dice per class and patch or, with ``dice_batch``, per class
    over the batch; derived structures weighted 0) plus cross-entropy ("dicece") or focal loss
    ("dicefocal") weighted per class by :func:`class_weight_vector`. The class weights are what let
    a 2-3 mm artery be learnt at all: it is ~0.05 % of a patch, and unweighted cross-entropy then
    holds its probability near that prior while the softmax Dice gradient vanishes with it (the
    1.5 mm and 1 mm IMA models gave p < 0.005 inside the IMA after 1200-2500 steps).

    With soft targets both terms take class probabilities: Dice over them (MONAI ``DiceLoss`` on soft
    labels) and cross-entropy against them (PyTorch's probability targets; its mean is over voxels,
    not over the voxels' class weights as with label values), whose minimum is the target itself, so
    the softmax learns the covered fraction. Label-value targets (validation) are one-hot encoded.
    """
    import torch
    from monai.losses import DiceLoss, FocalLoss
    from monai.networks.utils import one_hot

    weights = class_weight_vector(config, num_classes)
    dice_weights = torch.tensor([0.0 if w == 0.0 else 1.0 for w in weights], device=device)
    ce_weights = torch.tensor(weights, device=device)
    if config.soft_targets:
        soft_dice = DiceLoss(to_onehot_y=False, softmax=True, batch=bool(config.dice_batch), weight=dice_weights)
        soft_ce = torch.nn.CrossEntropyLoss(weight=ce_weights)

        def soft_loss(logits, target):
            if target.shape[1] == 1:
                target = one_hot(target.long(), num_classes).float()
            return soft_dice(logits, target) + soft_ce(logits, target)
        return soft_loss
    dice = DiceLoss(to_onehot_y=True, softmax=True, batch=bool(config.dice_batch), weight=dice_weights)
    if config.loss == "dicece":
        ce = torch.nn.CrossEntropyLoss(weight=ce_weights)

        def loss(logits, target):
            return dice(logits, target) + ce(logits, target[:, 0].long())
    else:
        focal = FocalLoss(to_onehot_y=True, use_softmax=True, weight=ce_weights)

        def loss(logits, target):
            return dice(logits, target) + focal(logits, target)
    return loss


def _lr_factor(step: int, config: TrainingConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr_fraction`` (multiplier of ``config.lr``)."""
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.min_lr_fraction
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    saved = {**TrainingConfig().to_dict(), **saved}  # a setting added since the checkpoint: its default
    diffs = sorted(k for k in set(saved) | set(current)
                   if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if diffs:
        raise InputError(
            f"cannot resume: the settings {diffs} differ from the checkpoint's",
            f"resume with the original settings (only {list(RESUMABLE_CHANGES)} may change) or start a new run",
        )


def train(
    config: TrainingConfig,
    output_dir: str | Path,
    *,
    source: CaseSource | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    log_every: int = 10,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    data_workers: int = 1,
) -> TrainingResult:
    """Train a segmentation network and write ``model.pt``, ``model_card.json``, the log and a checkpoint.

    Parameters
    ----------
    config: the run (see :class:`TrainingConfig`).
    output_dir: folder for ``model.pt`` (weights with the best mean validation Dice, a state dict
        loadable with ``torch.load(weights_only=True)``), ``model_card.json`` (schema-valid),
        ``training_log.jsonl`` (one JSON record per line: ``{"event": "train", "step", "loss", "lr",
        "time_s"}`` and ``{"event": "val", "step", "val_loss", "mean_dice", "dice": {key: value},
        "time_s"}``) and ``checkpoint.pt``.
    source: case source; default :class:`GeneratorCaseSource` (the synthetic generator).
    cache_dir: disk cache of prepared cases (``.npz``); None keeps them in memory only.
    resume: continue from ``output_dir/checkpoint.pt`` (same settings except
        ``RESUMABLE_CHANGES``). Without it, an existing checkpoint is refused, not overwritten.
    progress: show a tqdm progress bar on stderr.
    command: the exact command line, recorded in the card.
    log_every: rewrite the log file every this many steps (and at every validation).
    on_record: called with every log record as it is made.
    data_workers: processes that generate the missing cases at once before training
        (:meth:`CaseStore.prefetch`); the cases, and so the run, are the same for any number.

    Raises
    ------
    InputError: invalid settings, a checkpoint that exists without ``resume`` (or is missing
        with it), settings that differ from the checkpoint's, CUDA requested but absent.
    ModelError: generator missing, network parameters invalid.
    """
    import torch
    from monai.data import set_track_meta
    from monai.inferers import sliding_window_inference
    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot
    from monai.utils import set_determinism
    from tqdm.auto import tqdm

    from ..networks import build_network, count_parameters

    config.validate()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, model_path, card_path, log_path = (out / n for n in (CHECKPOINT_NAME, MODEL_NAME, CARD_NAME, LOG_NAME))

    checkpoint = None
    if resume:
        if not ckpt_path.is_file():
            raise InputError(f"cannot resume: no checkpoint at {ckpt_path}", "start without --resume")
        try:
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged checkpoint must not end in a deep traceback
            raise ModelError(f"the checkpoint {ckpt_path} cannot be read: {exc}",
                             "start a new run in another folder") from None
        _check_resumable(checkpoint["config"], config.to_dict())
    elif ckpt_path.is_file():
        raise InputError(f"{out} already holds a training run (checkpoint.pt)",
                         "use --resume to continue it, or choose another output folder")

    torch.set_num_threads(int(config.threads))
    device = _choose_device(config.device)
    use_amp = bool(config.amp and device == "cuda")
    structures = _label_structures(config.task)
    num_classes = max(s["value"] for s in structures) + 1
    keys = {s["value"]: s["key"] for s in structures}

    set_determinism(seed=config.seed)
    model = build_network(config.network, 1, num_classes, **config.network_params)
    bad = [p for p in config.patch_size if p % model.divisible_by]
    if bad:
        raise InputError(f"patch size {list(config.patch_size)} is not a multiple of {model.divisible_by} "
                         f"(needed by network {config.network})",
                         f"choose a patch size divisible by {model.divisible_by}")
    if config.init_from and checkpoint is None:
        _load_initial_weights(model, config.init_from)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = build_loss(config, num_classes, device)
    soft_values = soft_target_values(config)

    # -- data -------------------------------------------------------------------------------------
    if source is None:
        source = GeneratorCaseSource(config.generator, config.spacing_mm)
    store = CaseStore(source, config.task, config.spacing_mm, cache_dir, need_fractions=bool(soft_values))
    air = float(normalise_intensity(np.array([-3000.0]), config.intensity_window_hu, config.intensity_range)[0])
    t_data = time.monotonic()
    seeds = config.train_seeds + list(config.val_seeds)
    store.prefetch(seeds, data_workers)
    samples: dict[int, dict[str, Any]] = {}
    case_settings: dict[int, dict[str, Any]] = {}
    for seed in tqdm(seeds, desc="preparing cases", disable=not progress, unit="case"):
        case = store.get(seed)
        image = normalise_intensity(case.image_hu, config.intensity_window_hu, config.intensity_range)
        image, label = pad_to_patch(image, case.label, config.patch_size, air)
        if label.max(initial=0) >= num_classes:
            raise InputError(f"case {seed} has label value {int(label.max())} outside the {config.task} label set")
        sample = {"image": image[None], "label": label[None].astype(np.uint8)}
        if soft_values and seed in config.train_seeds:
            sample[FRACTIONS_KEY] = pad_channels_to_patch(case_fractions(case, soft_values, keys), config.patch_size)
        samples[seed] = class_indices(sample, num_classes) if seed in config.train_seeds else sample
        case_settings[seed] = case.settings
    data_time = time.monotonic() - t_data
    train_samples = [samples[s] for s in config.train_seeds]
    transform = train_transforms(config.patch_size, num_classes, config.samples_per_case, config.augment,
                                 device=device if device == "cuda" else None, fractions=bool(soft_values))

    # -- state ------------------------------------------------------------------------------------
    step, elapsed, history = 0, 0.0, []
    best_score, best_step, best_state, best_record, bad_evals = -math.inf, 0, None, None, 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        step, elapsed, history = int(checkpoint["step"]), float(checkpoint["elapsed_s"]), list(checkpoint["history"])
        best_score, best_step = float(checkpoint["best_score"]), int(checkpoint["best_step"])
        best_state, best_record = checkpoint["best_state"], checkpoint["best_record"]
        bad_evals = int(checkpoint["bad_evals"])
        torch.set_rng_state(checkpoint["torch_rng"])

    def make_batch(at_step: int):
        rng = np.random.default_rng([int(config.seed), int(at_step)])
        n_cases = math.ceil(config.batch_size / config.samples_per_case)
        chosen = rng.integers(0, len(train_samples), size=n_cases)
        transform.set_random_state(seed=int(rng.integers(0, 2**31 - 1)))
        patches = []
        for idx in chosen:
            patches.extend(transform(dict(train_samples[int(idx)])))
        patches = patches[: config.batch_size]
        # A patch is a numpy array or a tensor, on the GPU where the affine ran there.
        x = torch.stack([torch.as_tensor(p["image"]).to(device, torch.float32) for p in patches])
        y = torch.stack([torch.as_tensor(p["label"]).to(device).long() for p in patches])
        if soft_values:  # fractions in 1/255ths, interpolated linearly by the affine
            fractions = torch.stack([torch.as_tensor(p[FRACTIONS_KEY]).to(device, torch.float32) for p in patches])
            y = soft_target(y, fractions / 255.0, soft_values, num_classes)
        return x, y

    def autocast():
        return torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()

    def validate(at_step: int, time_s: float) -> dict[str, Any]:
        model.eval()
        losses, dices = [], []
        with torch.no_grad():
            for seed in config.val_seeds:
                s = samples[seed]
                x = torch.as_tensor(s["image"][None], device=device)
                y = torch.as_tensor(s["label"][None].astype(np.int64), device=device)
                with autocast():
                    logits = sliding_window_inference(x, roi_size=list(config.patch_size), sw_batch_size=2,
                                                      predictor=model, overlap=config.sw_overlap, mode="gaussian")
                logits = logits.float()
                losses.append(float(loss_fn(logits, y)))
                pred = one_hot(logits.argmax(dim=1, keepdim=True), num_classes)
                dices.append(compute_dice(pred, one_hot(y, num_classes), include_background=False,
                                          ignore_empty=True).cpu().numpy()[0])
        model.train()
        per_class = np.array(dices, dtype=float)  # (cases, classes-1); NaN where a structure is absent
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            class_mean = np.nanmean(per_class, axis=0)
        dice = {keys[v]: (None if not np.isfinite(class_mean[v - 1]) else round(float(class_mean[v - 1]), 5))
                for v in sorted(keys)}
        finite = [d for d in dice.values() if d is not None]
        return {"event": "val", "step": at_step, "val_loss": round(float(np.mean(losses)), 6),
                "mean_dice": round(float(np.mean(finite)), 5) if finite else None, "dice": dice,
                "time_s": round(time_s, 2)}

    def write_log() -> None:
        with atomic_output(log_path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")

    def save_checkpoint() -> None:
        state = {
            "format": 1, "step": step, "elapsed_s": elapsed, "config": config.to_dict(),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "best_score": best_score, "best_step": best_step, "best_state": best_state,
            "best_record": best_record, "bad_evals": bad_evals, "history": history,
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_output(ckpt_path) as tmp:
            torch.save(state, tmp)

    def record(entry: dict[str, Any]) -> None:
        history.append(entry)
        if on_record is not None:
            on_record(entry)

    def after_validation(entry: dict[str, Any]) -> bool:
        """Update the best model; True when early stopping triggers."""
        nonlocal best_score, best_step, best_state, best_record, bad_evals
        score = entry["mean_dice"] if entry["mean_dice"] is not None else -math.inf
        if score > best_score + config.min_delta or best_state is None:
            best_score, best_step, best_record, bad_evals = score, entry["step"], entry, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            return False
        bad_evals += 1
        return bool(config.patience and bad_evals >= config.patience)

    # -- loop -------------------------------------------------------------------------------------
    previous_track_meta = _track_meta()
    set_track_meta(False)  # plain tensors: metadata tracking costs time and is not needed here
    stopped = "steps"
    bar = tqdm(total=config.steps, initial=step, desc="training", disable=not progress, unit="step")
    try:
        model.train()
        t_start = time.monotonic() - elapsed
        if step == 0 and not history:
            entry = validate(0, 0.0)
            record(entry)
            after_validation(entry)
            write_log()
        while step < config.steps:
            if config.max_minutes is not None and time.monotonic() - t_start >= config.max_minutes * 60:
                stopped = "time_budget"
                break
            x, y = make_batch(step)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(model(x), y)
            if not torch.isfinite(loss.detach()):
                raise ModelError(f"the training loss became {float(loss.detach())} at step {step + 1}",
                                 "lower the learning rate (--lr) and start again")
            loss_value = float(loss.detach())
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            elapsed = time.monotonic() - t_start
            record({"event": "train", "step": step, "loss": round(loss_value, 6), "lr": lr,
                    "time_s": round(elapsed, 2)})
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", best_dice=f"{max(best_score, 0.0):.3f}")
            early = False
            validated = step % config.val_every == 0 or step == config.steps
            if validated:
                entry = validate(step, elapsed)
                record(entry)
                early = after_validation(entry)
                elapsed = time.monotonic() - t_start
            if validated or step % config.checkpoint_every == 0:
                save_checkpoint()
            if validated or step % log_every == 0:
                write_log()
            if early:
                stopped = "early_stopping"
                break
        if stopped == "time_budget" and history and history[-1]["event"] != "val":
            entry = validate(step, elapsed)
            record(entry)
            after_validation(entry)
        elapsed = time.monotonic() - t_start
        save_checkpoint()
        write_log()
    finally:
        bar.close()
        set_track_meta(previous_track_meta)

    # -- outputs ----------------------------------------------------------------------------------
    with atomic_output(model_path) as tmp:
        torch.save(best_state if best_state is not None else model.state_dict(), tmp)
    initial = next((r for r in history if r["event"] == "val" and r["step"] == 0), None)
    card = {
        "schema_version": 1,
        "name": f"cardiacai-{config.task}-{config.network}",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "task": config.task,
        "description": (f"{config.network} trained on synthetic {config.task} CT cases "
                        f"({config.train_cases} training cases) by CardiacAI.training"),
        "labels": structures,
        "input": {
            "channels": 1,
            "spacing_mm": [float(s) for s in config.spacing_mm],
            "orientation": {"coordinate_system": "LPS", "direction": np.eye(3).tolist(),
                            "axis_codes_ijk": "LPS", "array_axes": "k,j,i"},
            "intensity": {"unit": "HU", "window": [float(v) for v in config.intensity_window_hu],
                          "output_range": [float(v) for v in config.intensity_range], "clip": True,
                          "method": "linear"},
            "patch_size": [int(p) for p in config.patch_size],
            "divisible_by": int(model.divisible_by),
            "sliding_window_overlap": float(config.sw_overlap),
        },
        "network": {
            "name": config.network,
            "params": dict(config.network_params),
            "in_channels": 1,
            "out_channels": num_classes,
            "parameter_count": count_parameters(model),
            "output": "logits (N, out_channels, D, H, W); softmax over channels, argmax gives label values",
            "reference": type(model).__doc__.strip().splitlines()[0] if type(model).__doc__ else config.network,
        },
        "model_file": {"path": MODEL_NAME, "format": "torch-state-dict",
                       "size_bytes": model_path.stat().st_size, "sha256": sha256_file(model_path)},
        "training": {
            "command": command or _default_command(),
            "config": config.to_dict(),
            "generator": {"settings": dataclasses.asdict(config.generator),
                          "source": getattr(source, "cache_key", type(source).__name__),
                          "protocol_counts": _protocol_counts(case_settings, config.train_seeds)},
            "train_seeds": config.train_seeds,
            "validation_seeds": [int(s) for s in config.val_seeds],
            "steps": int(step),
            "stopped_because": stopped,
            "initial_weights": (None if not config.init_from else
                                {"path": str(config.init_from), "sha256": sha256_file(config.init_from)}),
            "training_time_s": round(elapsed, 1),
            "data_preparation_time_s": round(data_time, 1),
            "machine": _machine(device, config.threads),
        },
        "metrics": {
            "validation_seeds": [int(s) for s in config.val_seeds],
            "data": "synthetic validation cases (CardiacAI.synthetic), whole volumes, sliding window",
            "best_step": int(best_step),
            "val_loss": float(best_record["val_loss"]) if best_record else float("nan"),
            "mean_dice": best_record["mean_dice"] if best_record else None,
            "dice": dict(best_record["dice"]) if best_record else {},
            "initial": ({"val_loss": initial["val_loss"], "mean_dice": initial["mean_dice"],
                         "dice": initial["dice"]} if initial else {}),
        },
    }
    write_model_card(card, card_path)
    return TrainingResult(output_dir=out, model_path=model_path, card_path=card_path, log_path=log_path,
                          checkpoint_path=ckpt_path, steps=step, stopped_because=stopped, history=history,
                          best_step=int(best_step),
                          best_mean_dice=best_record["mean_dice"] if best_record else None)


def _protocol_counts(settings: dict[int, dict[str, Any]], seeds: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for seed in seeds:
        protocol = str(settings.get(seed, {}).get("protocol", "unknown"))
        counts[protocol] = counts.get(protocol, 0) + 1
    return counts


def _default_command() -> str:
    import shlex

    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("training", "__main__.py")):
        argv = ["python", "-m", "CardiacAI.training", *argv[1:]]
    return shlex.join(argv) if argv else "python"


def _track_meta() -> bool:
    from monai.data import get_track_meta

    return bool(get_track_meta())


@contextlib.contextmanager
def _quiet_nan_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield
