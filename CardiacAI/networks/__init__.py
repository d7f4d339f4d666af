"""Segmentation networks of CardiacAI, built by name from a registry.

Every network takes a float tensor (N, C, D, H, W) whose axes (D, H, W) are the (k, j, i) axes of
an :class:`CardiacAI.image.Image` array, with D, H, W multiples of ``network.divisible_by``, and
returns logits (N, classes, D, H, W). Names: ``densevnet`` (whole-heart paper, Gibson et al. 2018),
``unet`` (MONAI residual U-Net baseline), ``se_swin`` (IMA/aorta paper, SE-CNN + Swin hybrid).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from ..errors import ModelError
from .common import SegmentationNetwork, count_parameters
from .densevnet import DenseVNet
from .se_swin import SESwinUNet
from .unet import UNet

_REGISTRY: dict[str, Callable[..., SegmentationNetwork]] = {
    "densevnet": DenseVNet,
    "unet": UNet,
    "se_swin": SESwinUNet,
}


def available_networks() -> list[str]:
    """Names accepted by :func:`build_network`."""
    return sorted(_REGISTRY)


def default_params(name: str) -> dict[str, Any]:
    """The documented default parameters of network ``name`` (JSON-serialisable).

    Raises ModelError for an unknown name.
    """
    cls = _lookup(name)
    sig = inspect.signature(cls.__init__)
    out = {}
    for pname, p in sig.parameters.items():
        if pname in ("self", "in_channels", "out_channels") or p.default is inspect.Parameter.empty:
            continue
        out[pname] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def build_network(name: str, in_channels: int, out_channels: int, **params: Any) -> SegmentationNetwork:
    """Build the network registered as ``name``.

    Parameters
    ----------
    name: one of :func:`available_networks`.
    in_channels: input channels (1 for a CT volume).
    out_channels: classes including background (label-set size + 1).
    params: network-specific parameters (see each class); unknown ones are refused.

    Raises
    ------
    ModelError: unknown name, unknown parameter or inconsistent parameter values.
    """
    cls = _lookup(name)
    allowed = set(default_params(name))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ModelError(
            f"unknown parameter(s) {unknown} for network {name!r}",
            f"use only {sorted(allowed)}",
        )
    try:
        return cls(in_channels=int(in_channels), out_channels=int(out_channels), **params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"cannot build network {name!r} with parameters {params}: {exc}") from exc


def _lookup(name: str):
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown network {name!r}", f"choose one of {available_networks()}") from None


__all__ = [
    "DenseVNet",
    "SESwinUNet",
    "SegmentationNetwork",
    "UNet",
    "available_networks",
    "build_network",
    "count_parameters",
    "default_params",
]
