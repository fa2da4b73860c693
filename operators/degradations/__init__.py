"""Degradations (forward models): one family per file, a registry, build from spec, sample."""
from __future__ import annotations

from operators.degradations.base import Degradation, Noise
from operators.degradations.blur import Blur
from operators.degradations.denoise import Denoise
from operators.degradations.inpaint import Inpaint
from operators.degradations.registry import (
    DEGRADATIONS,
    build_degradation,
    register,
    sample_degradation,
    valid_keys,
)
from operators.degradations.sr import SuperResolution

for _cls in (Denoise, Blur, SuperResolution, Inpaint):
    register(_cls)

__all__ = [
    "DEGRADATIONS", "Blur", "Degradation", "Denoise", "Inpaint", "Noise", "SuperResolution",
    "build_degradation", "sample_degradation", "valid_keys",
]
