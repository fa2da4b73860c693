"""Degradations (forward models): one family per file, a registry, build from spec, sample.

Config shape: ``{"name": "sr", "scale": 4, "noise_sigma": 0.01}``; see ``build_degradation``."""
from __future__ import annotations

from operators.degradations.base import Degradation, Noise
from operators.degradations.blind import Blind, blind_view
from operators.degradations.blur import Blur
from operators.degradations.cg import cg_prox
from operators.degradations.colorize import Colorize
from operators.degradations.compose import Compose
from operators.degradations.denoise import Denoise
from operators.degradations.inpaint import Inpaint
from operators.degradations.jpeg import JPEG
from operators.degradations.realesrgan import RealESRGAN, sample_realesrgan_chain
from operators.degradations.registry import (
    DEGRADATIONS,
    build_degradation,
    register,
    sample_degradation,
    valid_keys,
)
from operators.degradations.sr import SuperResolution
from operators.degradations.video_codec import VideoCodec

for _cls in (Denoise, Blur, SuperResolution, Inpaint, Colorize, JPEG, VideoCodec, Compose, RealESRGAN, Blind):
    register(_cls)

__all__ = [
    "DEGRADATIONS", "JPEG", "Blind", "Blur", "blind_view", "Colorize", "Compose", "Degradation", "Denoise", "Inpaint", "Noise",
    "RealESRGAN", "SuperResolution", "VideoCodec", "build_degradation", "cg_prox", "sample_degradation",
    "sample_realesrgan_chain", "valid_keys",
]
