"""Shared pieces of the CardiacAI segmentation networks: input checks and parameter counting."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError


class SegmentationNetwork(nn.Module):
    """Base class: a 3D segmentation network taking (N, C, D, H, W) and returning logits.

    Subclasses set ``divisible_by`` (every spatial size D, H, W must be a multiple of it, because
    of the network's down-samplings) and implement ``_forward``. The array axes (D, H, W) are the
    (k, j, i) = (slice, row, column) axes of :class:`CardiacAI.image.Image` arrays.
    """

    #: every spatial size of the input must be a multiple of this (2 ** number of down-samplings)
    divisible_by: int = 1

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise InputError(
                f"a network needs at least 1 input and 1 output channel, got in_channels={in_channels}, "
                f"out_channels={out_channels}"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise InputError when ``x`` is not (N, in_channels, D, H, W) with D, H, W multiples of ``divisible_by``."""
        if x.ndim != 5:
            raise InputError(
                f"{type(self).__name__} expects a 5D tensor (N, C, D, H, W), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise InputError(
                f"{type(self).__name__} expects {self.in_channels} input channel(s), got {x.shape[1]}"
            )
        bad = [int(s) for s in x.shape[2:] if s % self.divisible_by]
        if bad:
            raise InputError(
                f"{type(self).__name__} needs every spatial size (D, H, W) to be a multiple of "
                f"{self.divisible_by}, got {tuple(int(s) for s in x.shape[2:])}",
                f"pad or crop the input (or choose a patch size) to multiples of {self.divisible_by}",
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - documented in subclasses
        self.check_input(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``model``."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
