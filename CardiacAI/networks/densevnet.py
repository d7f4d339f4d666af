"""Dense V-Net (Gibson et al. 2018), the segmentation network of the whole-heart paper.

Gibson E, Giganti F, Hu Y, et al. "Automatic multi-organ segmentation on abdominal CT with dense
V-networks." IEEE Trans Med Imaging 2018;37(8):1822-1834. The whole-heart paper (seed
``whole-heart-segmentation-densevnet.txt``) describes it as: 3x3x3 convolutions, dense connections
and batch normalisation; feature maps down-sampled by 2, three times; up-sampled back to the
original resolution; a softmax gives one class per voxel.

Built from MONAI blocks: ``monai.networks.blocks.ConvDenseBlock`` is the dense feature stack
(each layer's output concatenated to its input) and ``Convolution`` the strided down-sampling and
skip convolutions. Differences from Gibson et al., chosen for a CPU-sized model and said here so
nobody is misled: no dilated convolutions inside the stacks, no learned spatial prior, no batch-wise
spatial dropout, and the skip features are up-sampled to full resolution (not half) before the
final convolution so thin structures (coronary sinus, pulmonary veins) keep their resolution.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ConvDenseBlock
from torch import nn

from ..errors import ModelError
from .common import SegmentationNetwork


class DenseVNet(SegmentationNetwork):
    """Dense V-Net: three (strided down-sampling -> dense feature stack) levels, skips to full resolution.

    Input: float tensor (N, in_channels, D, H, W), D, H and W multiples of 8 (three down-samplings
    by 2). Axes (D, H, W) = (k, j, i) of the Image array; intensities normalised (see the model card).
    Output: logits (N, out_channels, D, H, W) at the input resolution (apply softmax over dim 1 for
    probabilities, argmax for labels).

    Parameters
    ----------
    in_channels, out_channels: input channels (1 for CT) and classes including background.
    down_features: output channels of the strided 3x3x3 down-sampling convolution of each level
        (three values; Gibson et al. used 24 before the first stack).
    layers: number of 3x3x3 conv-BN-ReLU layers in each level's dense feature stack (Gibson: 5, 10, 10).
    growth: channels each dense layer adds (Gibson: 4, 8, 16).
    skip_features: channels of each level's 3x3x3 skip convolution (Gibson: 12, 24, 24).

    Raises
    ------
    ModelError: when the per-level sequences do not have three positive entries.
    InputError (at forward): for a wrong tensor rank, channel count or spatial size not divisible by 8.
    """

    divisible_by = 8

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        down_features: Sequence[int] = (8, 16, 24),
        layers: Sequence[int] = (2, 3, 4),
        growth: Sequence[int] = (4, 8, 8),
        skip_features: Sequence[int] = (4, 8, 8),
    ) -> None:
        super().__init__(in_channels, out_channels)
        for name, seq in (("down_features", down_features), ("layers", layers), ("growth", growth),
                          ("skip_features", skip_features)):
            if len(seq) != 3 or any(int(v) < 1 for v in seq):
                raise ModelError(f"densevnet parameter {name} must be three positive integers, got {list(seq)}")
        conv_kw = dict(spatial_dims=3, act="RELU", norm="BATCH")
        self.down = nn.ModuleList()
        self.stacks = nn.ModuleList()
        self.skips = nn.ModuleList()
        channels = in_channels
        for level in range(3):
            self.down.append(Convolution(in_channels=channels, out_channels=int(down_features[level]),
                                         strides=2, kernel_size=3, **conv_kw))
            stack = ConvDenseBlock(in_channels=int(down_features[level]),
                                   channels=[int(growth[level])] * int(layers[level]), kernel_size=3, **conv_kw)
            self.stacks.append(stack)
            channels = int(down_features[level]) + int(growth[level]) * int(layers[level])
            self.skips.append(Convolution(in_channels=channels, out_channels=int(skip_features[level]),
                                          kernel_size=3, **conv_kw))
        # The input itself is concatenated too, so the head sees full-resolution intensities.
        self.head = Convolution(spatial_dims=3, in_channels=int(sum(skip_features)) + in_channels,
                                out_channels=out_channels, kernel_size=3, conv_only=True)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        features = [x]
        h = x
        for down, stack, skip in zip(self.down, self.stacks, self.skips):
            h = stack(down(h))
            features.append(F.interpolate(skip(h), size=size, mode="trilinear", align_corners=False))
        return self.head(torch.cat(features, dim=1))
