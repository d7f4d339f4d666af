"""``cardiacai train``: command-line front end of :func:`CardiacAI.training.train`.

The lead wires :func:`add_train_parser` / :func:`run_train` into ``cardiacai``; meanwhile
``python -m CardiacAI.training ...`` runs the same command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..errors import CardiacAIError, InputError
from .config import FOVS, TASKS, GeneratorSettings, TrainingConfig


def _triple(kind):
    def parse(text: str):
        parts = [p for p in text.replace("x", ",").split(",") if p]
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"expected one or three values, got {text!r}")
        return tuple(kind(p) for p in parts)
    return parse


def _pair(text: str):
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two values LOW,HIGH, got {text!r}")
    return tuple(float(p) for p in parts)


def _protocols(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, weight = part.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad protocol weight in {part!r} (use NAME:WEIGHT)") from None
    return out


def _seeds(text: str) -> tuple[int, ...]:
    """'100000-100003' or '5,9,12'."""
    if "-" in text.strip("-") and "," not in text:
        lo, hi = text.split("-", 1)
        return tuple(range(int(lo), int(hi) + 1))
    return tuple(int(p) for p in text.split(",") if p)


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand (and its options) to an argparse ``subparsers`` object."""
    d = TrainingConfig()
    p = subparsers.add_parser(
        "train", help="train a segmentation model on synthetic cardiac CT",
        description="Train a CardiacAI segmentation network on cases from the synthetic CT generator. "
                    "Writes model.pt, model_card.json, training_log.jsonl and checkpoint.pt to --output.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output", "-o", required=True, help="output folder of the run")
    p.add_argument("--task", choices=TASKS, default=d.task)
    p.add_argument("--network", default=d.network, help="densevnet, unet or se_swin")
    p.add_argument("--network-params", default="{}", help="JSON object of network parameters")
    p.add_argument("--patch-size", type=_triple(int), default=d.patch_size, help="D,H,W voxels (k,j,i) or one value")
    p.add_argument("--spacing", type=_triple(float), default=d.spacing_mm, help="training voxel size i,j,k mm")
    p.add_argument("--window", type=_pair, default=d.intensity_window_hu, help="HU window LOW,HIGH mapped to -1..1")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--samples-per-case", type=int, default=d.samples_per_case)
    p.add_argument("--loss", choices=["dicece", "dicefocal"], default=d.loss)
    p.add_argument("--dice-batch", action="store_true",
                   help="one Dice per class over the whole batch (nnU-Net batch Dice; for thin structures)")
    p.add_argument("--class-weights", default="{}",
                   help='JSON object: structure key -> cross-entropy weight, e.g. {"aorta": 2}')
    p.add_argument("--soft-targets", nargs="+", default=[], metavar="KEY",
                   help="structure keys learnt from the generator's partial-volume fractions instead of 0/1 "
                        "labels (the thin IMAs: left_internal_mammary_artery right_internal_mammary_artery)")
    p.add_argument("--init-from", default=None, help="start from this model.pt of an earlier run (same network)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--steps", type=int, default=d.steps, help="optimiser steps (the cosine schedule spans them)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--patience", type=int, default=None, help="early stopping: validations without improvement")
    p.add_argument("--min-delta", type=float, default=d.min_delta)
    p.add_argument("--train-cases", type=int, default=d.train_cases)
    p.add_argument("--train-seed-start", type=int, default=d.train_seed_start)
    p.add_argument("--val-seeds", type=_seeds, default=d.val_seeds, help="e.g. 100000-100002 or 5,9")
    p.add_argument("--protocols", type=_protocols, default=GeneratorSettings().protocols,
                   help="protocol mix NAME:WEIGHT,... (cta, gated_noncontrast, chest_noncontrast, chest_contrast)")
    p.add_argument("--synthseg-fraction", type=float, default=0.0)
    p.add_argument("--fov", choices=FOVS, default=GeneratorSettings().fov)
    p.add_argument("--generator-extra", default="{}", help="JSON object of further GeneratorConfig settings")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--cache-dir", default=None, help="disk cache of generated cases (.npz)")
    p.add_argument("--data-workers", type=int, default=1,
                   help="processes that generate the training and validation cases at once before training "
                        "(the run is the same for any number)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)
    return p


def _json_object(text: str, option: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{option} is not valid JSON: {exc}", 'give a JSON object, e.g. \'{"layers": [2, 3, 4]}\'') from None
    if not isinstance(value, dict):
        raise InputError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """Build the validated :class:`TrainingConfig` of parsed ``train`` arguments."""
    gen = GeneratorSettings(protocols=args.protocols, synthseg_fraction=args.synthseg_fraction, fov=args.fov,
                            extra=_json_object(args.generator_extra, "--generator-extra"))
    return TrainingConfig(
        task=args.task, network=args.network, network_params=_json_object(args.network_params, "--network-params"),
        patch_size=tuple(args.patch_size), spacing_mm=tuple(args.spacing), intensity_window_hu=tuple(args.window),
        batch_size=args.batch_size, samples_per_case=args.samples_per_case, loss=args.loss,
        dice_batch=args.dice_batch, class_weights=_json_object(args.class_weights, "--class-weights"), lr=args.lr,
        soft_targets=tuple(args.soft_targets),
        init_from=args.init_from, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, steps=args.steps,
        max_minutes=args.max_minutes, val_every=args.val_every, checkpoint_every=args.checkpoint_every,
        patience=args.patience, min_delta=args.min_delta, train_cases=args.train_cases,
        train_seed_start=args.train_seed_start, val_seeds=tuple(args.val_seeds), augment=not args.no_augment,
        seed=args.seed, threads=args.threads, device=args.device, amp=not args.no_amp, generator=gen,
    ).validate()


def run_train(args: argparse.Namespace) -> int:
    """Run ``train`` from parsed arguments. Returns 0 on success, 2 on a CardiacAI error (message on stderr).

    The card records ``args.command_line`` when set, else the process's ``sys.argv``.
    """
    from .engine import _default_command, train

    try:
        config = config_from_args(args)
        command = getattr(args, "command_line", None) or _default_command()
        result = train(config, Path(args.output), cache_dir=args.cache_dir, resume=args.resume,
                       progress=not args.no_progress, command=command, data_workers=args.data_workers)
    except CardiacAIError as exc:
        print(f"cardiacai train: error: {exc}", file=sys.stderr)
        return 2
    print(f"trained {result.steps} steps (stopped: {result.stopped_because}); best mean validation Dice "
          f"{result.best_mean_dice} at step {result.best_step}")
    print(f"model: {result.model_path}\ncard:  {result.card_path}\nlog:   {result.log_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m CardiacAI.training [train] OPTIONS``."""
    parser = argparse.ArgumentParser(prog="python -m CardiacAI.training")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("train", "-h", "--help"):
        argv = ["train", *argv]
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "CardiacAI.training", *argv])
    return int(args.func(args))
