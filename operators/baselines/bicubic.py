"""Baseline `bicubic`: y enlarged to the image size by bicubic interpolation, nothing else.

What a user sees when an LQ photo is simply upscaled: the floor for super-resolution and for
the blind real-world tasks (Real-ESRGAN-degraded, ``blind``), whose operator is unknown, so
no pseudo-inverse exists. At scale 1 it returns y."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.degradations.base import Degradation
from operators.degradations.blind import blind_view, upsample

APPLIES = ("sr", "realesrgan", "blind")


@dataclass(frozen=True)
class BicubicConfig:
    """No options: torch bicubic (a = -0.75, no antialias), clamped to [0, 1]."""


def baseline_bicubic(y: torch.Tensor, degradation: Degradation, *, config: BicubicConfig | None = None) -> torch.Tensor:
    """y (B, C, h, w) -> x (B, C, s h, s w), s the degradation's scale."""
    size = blind_view(degradation).input_shape(tuple(y.shape))[-2:]
    return upsample(y.clamp(0, 1), size)
