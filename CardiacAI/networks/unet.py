"""A residual 3D U-Net baseline: MONAI's ``UNet`` (Kerfoot et al. 2018 residual units, Ronneberger 2015 U-Net)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from monai.networks.nets import UNet as MonaiUNet

from ..errors import ModelError
from .common import SegmentationNetwork


class UNet(SegmentationNetwork):
    """MONAI ``UNet`` with batch norm and residual units; a fast baseline.

    Input: float tensor (N, in_channels, D, H, W), D, H, W multiples of the product of ``strides``
    (8 with the defaults). Output: logits (N, out_channels, D, H, W).

    Parameters
    ----------
    channels: feature channels per level, from the top (full resolution) to the bottleneck.
    strides: down-sampling factor between consecutive levels (len(channels) - 1 values).
    num_res_units: residual units per block (0 = plain conv blocks).

    Raises
    ------
    ModelError: when ``strides`` does not have len(channels) - 1 entries.
    InputError (at forward): for a wrong rank, channel count or spatial size not divisible.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (8, 16, 32, 64),
        strides: Sequence[int] = (2, 2, 2),
        num_res_units: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels)
        if len(strides) != len(channels) - 1 or len(channels) < 2:
            raise ModelError(
                f"unet needs len(strides) == len(channels) - 1, got channels={list(channels)}, strides={list(strides)}"
            )
        self.divisible_by = int(math.prod(int(s) for s in strides))
        self.net = MonaiUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                             channels=[int(c) for c in channels], strides=[int(s) for s in strides],
                             num_res_units=int(num_res_units), norm="BATCH")

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
