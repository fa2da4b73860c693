"""A diffusers AutoencoderKL or AutoencoderTiny as a Codec, with its latent scaling.

encode(x) = (E(2x - 1) - shift_factor) * scaling_factor, the latent the diffusion UNet was
trained on (Stable Diffusion: shift 0, scaling 0.18215; SDXL 0.13025; TAESD 1.0);
decode(z) = (Dec(z / scaling_factor + shift_factor) + 1) / 2. AutoencoderKL encodes to the
mode (mean) of its posterior, so encode is deterministic.
"""
from __future__ import annotations

import torch

from operators.priors.base import Codec
from operators.priors.scaled_codec import check_divisible

SUPPORTED = ("AutoencoderKL", "AutoencoderTiny")


def vae_factor(vae: torch.nn.Module) -> int:
    """Spatial downsampling of a diffusers VAE, from its config."""
    cfg = vae.config
    if type(vae).__name__ == "AutoencoderTiny":
        return int(cfg.upsampling_scaling_factor) ** (len(cfg.encoder_block_out_channels) - 1)
    return 2 ** (len(cfg.block_out_channels) - 1)


class DiffusersCodec(Codec):
    """Wraps ``vae`` (frozen, eval). x: (B, 3, H, W) in [0, 1] -> z: (B, c, H/f, W/f)."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        kind = type(vae).__name__
        if kind not in SUPPORTED:
            raise ValueError(f"unsupported VAE class {kind}; supported: {', '.join(SUPPORTED)}")
        self.vae = vae.eval().requires_grad_(False)
        self.kind = kind
        self.factor = vae_factor(vae)
        self.latent_channels = int(vae.config.latent_channels)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.factor, f"the {self.kind} codec")
        out = self.vae.encode((2 * x - 1).to(self.dtype))
        z = out.latent_dist.mode() if self.kind == "AutoencoderKL" else out.latents
        return (z.float() - self.shift_factor) * self.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        y = self.vae.decode((z / self.scaling_factor + self.shift_factor).to(self.dtype)).sample
        return (y.float() + 1) / 2
