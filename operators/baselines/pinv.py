"""Baseline `pinv`: the operator's closed-form pseudo-inverse A^+ y (or plain bicubic
upsampling for super-resolution), clamped to [0, 1]. No prior at all: the floor every
restoration method should clear."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from operators.degradations.base import Degradation

APPLIES = ("denoise", "blur", "sr", "inpaint")


@dataclass(frozen=True)
class PinvConfig:
    """``sr``: ``pinv`` (the operator's own pseudo-inverse, Wh^+ y Ww^+T for bicubic) or
    ``bicubic`` (torch bicubic interpolation of y to the image size)."""

    sr: Literal["pinv", "bicubic"] = "pinv"

    def __post_init__(self) -> None:
        if self.sr not in ("pinv", "bicubic"):
            raise ValueError(f"pinv: sr must be 'pinv' or 'bicubic', got {self.sr!r}")


def baseline_pinv(y: torch.Tensor, degradation: Degradation, *, config: PinvConfig | None = None) -> torch.Tensor:
    """x = clamp(A^+ y): y (B, C, h, w) -> x (B, C, H, W). Denoising gives y itself,
    inpainting y with zeros in the holes, blur the (noise-amplifying) inverse filter."""
    cfg = config or PinvConfig()
    if degradation.name == "sr" and cfg.sr == "bicubic":
        size = tuple(degradation.input_shape(tuple(y.shape)))[-2:]
        x = torch.nn.functional.interpolate(y, size=size, mode="bicubic", align_corners=False)
    else:
        x = degradation.pinv(y)
    return x.clamp(0, 1)
