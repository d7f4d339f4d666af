"""SE-Swin U-net: squeeze-and-excitation CNN blocks alternating with Swin transformer blocks.

After the IMA/aorta paper (Xie, Chan, Wahome, Neubauer, Channon, Yaqub; Eur Heart J Digit Health
2026; seed ``ima-aorta-perivascular-se-swin.txt``): "combines a CNN (squeeze-and-excitation block)
and a transformer (Swin block) ... alternating between these blocks". The abstract gives no layer
sizes, so this is a small U-shaped encoder-decoder in which the levels alternate:

    level 0 (full res)  SE residual block   (Hu et al. 2018, MONAI ``SEBlock``)
    level 1 (1/2)       Swin blocks         (Liu et al. 2021; MONAI Swin-UNETR ``SwinTransformerBlock``,
                                             window + shifted-window attention)
    level 2 (1/4)       SE residual block
    level 3 (1/8)       Swin blocks (bottleneck)

and the decoder mirrors it (transposed-conv up-sampling, skip concatenation, the same block type as
the encoder level).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from monai.networks.blocks import Convolution, SEBlock
from monai.networks.nets.swin_unetr import SwinTransformerBlock, compute_mask, get_window_size
from torch import nn

from ..errors import ModelError
from .common import SegmentationNetwork


class SwinStage(nn.Module):
    """Swin transformer blocks on a (N, C, D, H, W) map, alternating regular and shifted windows.

    The same composition as MONAI Swin-UNETR's ``BasicLayer`` (whose channel-last rearrangement
    needs the optional ``einops`` package; a plain ``permute`` does the same here). The blocks pad
    to a multiple of the window internally, so any spatial size works. Output shape = input shape.
    """

    def __init__(self, dim: int, depth: int, heads: int, window: int) -> None:
        super().__init__()
        self.window_size = (window,) * 3
        self.shift_size = (window // 2,) * 3
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim=dim, num_heads=heads, window_size=self.window_size,
                                 shift_size=(0, 0, 0) if i % 2 == 0 else self.shift_size, qkv_bias=True)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[2:]
        window, shift = get_window_size((d, h, w), self.window_size, self.shift_size)
        padded = [int(math.ceil(s / ws)) * ws for s, ws in zip((d, h, w), window)]
        mask = compute_mask(padded, window, shift, x.device)
        y = x.permute(0, 2, 3, 4, 1).contiguous()
        for block in self.blocks:
            y = block(y, mask)
        return y.permute(0, 4, 1, 2, 3).contiguous()


def _swin(dim: int, depth: int, heads: int, window: int) -> SwinStage:
    return SwinStage(dim, depth, heads, window)


#: ``norm`` parameter -> MONAI norm layer spec. Instance norm with a learnt scale and shift, as nnU-Net uses:
#: each input is normalised by its own statistics instead of running ones gathered on training data.
NORMS = {"batch": "BATCH", "instance": ("INSTANCE", {"affine": True})}


def _se(in_ch: int, out_ch: int, norm) -> SEBlock:
    # MONAI's defaults for the three convolutions, with the chosen norm
    relu = ("relu", {"inplace": True})
    return SEBlock(spatial_dims=3, in_channels=in_ch, n_chns_1=out_ch, n_chns_2=out_ch, n_chns_3=out_ch, r=2,
                   conv_param_1={"kernel_size": 1, "norm": norm, "act": relu},
                   conv_param_2={"kernel_size": 3, "norm": norm, "act": relu},
                   conv_param_3={"kernel_size": 1, "norm": norm, "act": None})


class SESwinUNet(SegmentationNetwork):
    """U-shaped network with alternating SE-CNN and Swin-transformer levels (IMA/aorta paper).

    Input: float tensor (N, in_channels, D, H, W), D, H, W multiples of ``divisible_by`` = 8 x
    ``stem_stride`` (three down-samplings by 2, four with a strided stem; the Swin windows pad
    internally, so no extra constraint). Output: logits (N, out_channels, D, H, W).

    Parameters
    ----------
    features: channels of levels 0-3 (four values). Levels 1 and 3 are Swin levels, so
        features[1] and features[3] must be divisible by heads[0] and heads[1].
    swin_depth: transformer blocks per Swin level (2 = one regular + one shifted window).
    heads: attention heads of the two Swin levels (level 1, level 3).
    window: attention window edge in voxels.
    stem_stride: 1 puts level 0 at the input resolution; 2 makes the stem a stride-2 convolution
        (like Swin-UNETR's patch embedding and MONAI U-Net's first level), so every level works at half
        the resolution and a transposed convolution brings the logits back to the input size. Full-
        resolution 3D convolutions dominate a training step on the CPU: with 2, a step on two 32 x 96 x 96
        patches took 0.20 s instead of 1.39 s on 2 cores (MONAI U-Net: 0.32 s). With 2, D, H, W must be
        multiples of 16.
    norm: "batch" (running statistics learnt in training; ``ima-aorta-se-swin`` 0.1.0) or "instance"
        (each window normalised by its own statistics, with a learnt scale and shift) for every
        convolution of the CNN levels; the Swin blocks keep their layer norm.

    Raises
    ------
    ModelError: for inconsistent parameters (wrong lengths, channels not divisible by heads, a stem
        stride other than 1 or 2, an unknown norm).
    InputError (at forward): for a wrong rank, channel count or spatial size not divisible by
        ``divisible_by``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        features: Sequence[int] = (8, 16, 32, 48),
        swin_depth: int = 2,
        heads: Sequence[int] = (2, 4),
        window: int = 4,
        stem_stride: int = 1,
        norm: str = "batch",
    ) -> None:
        super().__init__(in_channels, out_channels)
        f = [int(v) for v in features]
        if len(f) != 4 or min(f) < 1:
            raise ModelError(f"se_swin parameter features must be four positive integers, got {list(features)}")
        if len(heads) != 2 or f[1] % int(heads[0]) or f[3] % int(heads[1]):
            raise ModelError(
                f"se_swin needs features[1] divisible by heads[0] and features[3] by heads[1], got "
                f"features={f}, heads={list(heads)}"
            )
        if swin_depth < 1 or window < 2:
            raise ModelError(f"se_swin needs swin_depth >= 1 and window >= 2, got {swin_depth}, {window}")
        if stem_stride not in (1, 2):
            raise ModelError(f"se_swin parameter stem_stride must be 1 or 2, got {stem_stride}")
        if norm not in NORMS:
            raise ModelError(f"se_swin parameter norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.divisible_by = 8 * int(stem_stride)
        norm_layer = NORMS[norm]
        conv_kw = dict(spatial_dims=3, act="RELU", norm=norm_layer)
        self.stem = Convolution(in_channels=in_channels, out_channels=f[0], strides=int(stem_stride), kernel_size=3,
                                **conv_kw)
        self.enc0 = _se(f[0], f[0], norm_layer)
        self.down1 = Convolution(in_channels=f[0], out_channels=f[1], strides=2, kernel_size=3, **conv_kw)
        self.enc1 = _swin(f[1], swin_depth, int(heads[0]), window)
        self.down2 = Convolution(in_channels=f[1], out_channels=f[2], strides=2, kernel_size=3, **conv_kw)
        self.enc2 = _se(f[2], f[2], norm_layer)
        self.down3 = Convolution(in_channels=f[2], out_channels=f[3], strides=2, kernel_size=3, **conv_kw)
        self.bottleneck = _swin(f[3], swin_depth, int(heads[1]), window)

        def up(cin: int, cout: int) -> Convolution:
            return Convolution(in_channels=cin, out_channels=cout, strides=2, kernel_size=3,
                               is_transposed=True, **conv_kw)

        self.up3 = up(f[3], f[2])
        self.dec2 = _se(2 * f[2], f[2], norm_layer)
        self.up2 = up(f[2], f[1])
        self.fuse1 = Convolution(in_channels=2 * f[1], out_channels=f[1], kernel_size=1, **conv_kw)
        self.dec1 = _swin(f[1], swin_depth, int(heads[0]), window)
        self.up1 = up(f[1], f[0])
        self.dec0 = _se(2 * f[0], f[0], norm_layer)
        if stem_stride == 1:
            self.head = nn.Conv3d(f[0], out_channels, kernel_size=1)
        else:  # back to the input resolution: logits straight from a transposed convolution (as MONAI U-Net's last level)
            self.head = Convolution(spatial_dims=3, in_channels=f[0], out_channels=out_channels, strides=2,
                                    kernel_size=3, is_transposed=True, conv_only=True)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.enc0(self.stem(x))
        s1 = self.enc1(self.down1(s0))
        s2 = self.enc2(self.down2(s1))
        b = self.bottleneck(self.down3(s2))
        d2 = self.dec2(torch.cat([self.up3(b), s2], dim=1))
        d1 = self.dec1(self.fuse1(torch.cat([self.up2(d2), s1], dim=1)))
        d0 = self.dec0(torch.cat([self.up1(d1), s0], dim=1))
        return self.head(d0)
