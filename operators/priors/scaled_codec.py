"""A codec whose latent is shifted and scaled to the statistics a latent denoiser expects."""
from __future__ import annotations

import torch

from operators.priors.base import Codec


def check_divisible(x: torch.Tensor, factor: int, what: str) -> None:
    """Raise a clear error unless H and W of x (B, C, H, W) are multiples of ``factor``."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(
            f"{what} needs H and W divisible by {factor}, got {h}x{w}; pad first "
            f"(operators.priors.padding.pad_to_multiple) and crop the decoded image back"
        )


class ScaledCodec(Codec):
    """encode(x) = (inner.encode(x) - shift) * scale; decode(z) = inner.decode(z / scale + shift).

    Stable Diffusion's ``scaling_factor`` is this with shift = 0; SD3/FLUX add a shift.
    """

    def __init__(self, inner: Codec, shift: float = 0.0, scale: float = 1.0):
        super().__init__()
        self.inner = inner
        self.shift = float(shift)
        self.scale = float(scale)
        self.factor = inner.factor
        self.latent_channels = inner.latent_channels

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (self.inner.encode(x) - self.shift) * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(z / self.scale + self.shift)
