"""TAEF2: the tiny autoencoder (TAESD family, Ollin Boer Bohan) for the FLUX.2 VAE latent.

Architecture written from the state-dict keys of ``taef2_{encoder,decoder}.pth``: TAESD's
conv/ReLU residual blocks, three stride-2 convs (factor 8), a 32-channel latent, and in the
three lowest-resolution blocks of each side an extra "pool" branch (1x1 conv 64 -> 256,
GroupNorm(4), ReLU, 1x1 conv 256 -> 64) added to the block input. Images in [0, 1]; the
latent is FLUX.2's raw (unpacked, un-normalized) 32 x H/8 x W/8 latent. Weights are float16
on disk and run in float32 here.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from operators.priors.base import Codec
from operators.priors.paths import shared_weights
from operators.priors.scaled_codec import check_divisible


def _conv(c_in: int, c_out: int, **kw) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kw)


class Clamp(nn.Module):
    """Soft clamp of the latent to (-3, 3): 3 tanh(z / 3)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z / 3) * 3


class TAEBlock(nn.Module):
    """relu(conv3(x) + x), with x first replaced by x + pool(x) where the pool branch exists."""

    def __init__(self, c: int = 64, pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        self.pool = None
        if pool:
            wide = 4 * c
            self.pool = nn.Sequential(
                nn.Conv2d(c, wide, 1, bias=False), nn.GroupNorm(4, wide), nn.ReLU(), nn.Conv2d(wide, c, 1, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


def taef2_encoder(latent_channels: int = 32) -> nn.Sequential:
    def down() -> nn.Conv2d:
        return _conv(64, 64, stride=2, bias=False)

    return nn.Sequential(
        _conv(3, 64), TAEBlock(),
        down(), TAEBlock(), TAEBlock(), TAEBlock(),
        down(), TAEBlock(), TAEBlock(), TAEBlock(),
        down(), TAEBlock(pool=True), TAEBlock(pool=True), TAEBlock(pool=True),
        _conv(64, latent_channels),
    )  # fmt: skip


def taef2_decoder(latent_channels: int = 32) -> nn.Sequential:
    def up() -> list[nn.Module]:
        return [nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]

    return nn.Sequential(
        Clamp(), _conv(latent_channels, 64), nn.ReLU(),
        TAEBlock(pool=True), TAEBlock(pool=True), TAEBlock(pool=True), *up(),
        TAEBlock(), TAEBlock(), TAEBlock(), *up(),
        TAEBlock(), TAEBlock(), TAEBlock(), *up(),
        TAEBlock(), _conv(64, 3),
    )  # fmt: skip


class TAEF2Codec(Codec):
    """encode: (B, 3, H, W) in [0, 1] -> (B, 32, H/8, W/8); decode back to ~[0, 1] (unclamped)."""

    factor = 8
    latent_channels = 32

    def __init__(self):
        super().__init__()
        self.encoder = taef2_encoder(self.latent_channels)
        self.decoder = taef2_decoder(self.latent_channels)

    @classmethod
    def from_weights(
        cls, encoder: str | Path | None = None, decoder: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> "TAEF2Codec":
        """Default files: ../shared/data/weights/taef2_{encoder,decoder}.pth (weights_only=True)."""
        codec = cls()
        for part, path in (("encoder", encoder), ("decoder", decoder)):
            p = Path(path) if path is not None else shared_weights(f"taef2_{part}.pth")
            if not p.is_file():
                raise FileNotFoundError(f"TAEF2 {part} weights not found: {p}; pass {part}=<path to taef2_{part}.pth>")
            state = torch.load(p, map_location="cpu", weights_only=True)
            getattr(codec, part).load_state_dict({k: v.float() for k, v in state.items()})
        return codec.to(device).eval().requires_grad_(False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.factor, "TAEF2")
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
