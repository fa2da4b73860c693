"""The unknown degradation of real low-quality photos: only the scale is known.

``{"name": "blind", "scale": 4}`` says "y is an LQ image of an HQ image ``scale`` times larger,
degraded by something unknown" (real archives; the Real-ESRGAN chain is its standard model).
Blind solvers (indigo, conditional, irsde) need only y and the target size; there is no
forward map, so a non-blind solver given ``blind`` fails with an error naming it, and
``synthesize: true`` cannot degrade with it (use ``realesrgan``, whose sampled chain the blind
solvers never read).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from operators.degradations.base import Degradation, Noise

SCALES = (1, 2, 4)


@dataclass(frozen=True, eq=False)
class Blind(Degradation):
    """y: (B, C, h, w) of an x: (B, C, scale h, scale w); no forward map, no prox."""

    name: ClassVar[str] = "blind"
    linear: ClassVar[bool] = False
    scale: int = 4
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"blind scale must be one of {', '.join(map(str, SCALES))}, got {self.scale}")

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-2], shape[-2] // self.scale, shape[-1] // self.scale)

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-2], shape[-2] * self.scale, shape[-1] * self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "degradation 'blind' has no forward map (the operator is unknown): restore it with a blind "
            "solver (indigo, conditional, irsde), or synthesize with a known one such as 'realesrgan'")


def blind_view(degradation: Degradation) -> Blind:
    """What a blind solver may know of ``degradation``: its scale, nothing else (a realesrgan
    operator's sampled chain and seed are dropped)."""
    if isinstance(degradation, Blind):
        return degradation
    scale = getattr(degradation, "scale", 1)
    try:
        return Blind(scale=int(scale))
    except ValueError as e:
        raise ValueError(f"a blind solver restores scales {SCALES}; degradation {degradation.name!r}: {e}") from None


def upsample(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """y resized to ``size`` (bicubic, clamped to [0, 1]); y itself when it already has that size.
    The blind methods' conditioning image mu and their starting point."""
    if tuple(y.shape[-2:]) == tuple(size):
        return y
    return F.interpolate(y, size=tuple(size), mode="bicubic", align_corners=False).clamp(0, 1)
