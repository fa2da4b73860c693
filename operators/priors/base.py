"""The prior contract: an EDM-sense denoiser D(x, sigma) = E[x0 | x0 + sigma * n].

Pixel priors work on float32 NCHW images in [0, 1] and sigma is in those units (a network
trained on [-1, 1] is adapted: x' = 2x - 1, sigma' = 2 sigma). Latent priors work on the
latent of their ``codec``; ``codec.encode`` takes [0, 1] images, ``codec.decode`` returns them.
Every call to ``denoise`` counts one NFE (a whole-image call counts once even when the
prior evaluates it in tiles); backward passes are counted by the solver that takes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


class Codec(torch.nn.Module):
    """A latent autoencoder: ``encode`` (B, C, H, W) in [0, 1] -> (B, c, H/f, W/f); ``decode`` back."""

    factor: int = 8
    latent_channels: int = 4

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass
class NFECounter:
    forward: int = 0
    backward: int = 0

    def reset(self) -> None:
        self.forward = 0
        self.backward = 0


class Prior(torch.nn.Module):
    """Base class. Subclasses implement ``_denoise``; callers use ``denoise`` (counts NFE)."""

    space: Literal["pixel", "latent"] = "pixel"
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    channels: int = 3
    codec: Codec | None  # set in __init__: a class-level None would shadow an nn.Module codec
    name: str = "prior"

    def __init__(self) -> None:
        super().__init__()
        self.nfe = NFECounter()
        self.codec = None

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        raise NotImplementedError

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor, prompt: str | None = None) -> torch.Tensor:
        """D(x, sigma): x (B, C, H, W); sigma a float or (B,) tensor. One NFE per call."""
        sigma_t = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        if sigma_t.ndim == 0:
            sigma_t = sigma_t.expand(x.shape[0])
        self.nfe.forward += 1
        return self._denoise(x, sigma_t, prompt)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.codec is None:
            return x
        return self.codec.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.codec is None:
            return z
        return self.codec.decode(z)


class GaussianPrior(Prior):
    """The exact prior x0 ~ N(mean, s2 I): D(x, sigma) = mean + (x - mean) / (1 + sigma^2 / s2).

    Used by the exact-answer tests: with a linear operator the posterior is Gaussian and known
    in closed form.
    """

    name = "gaussian"

    def __init__(self, s2: float = 0.05, mean: float = 0.0, sigma_min: float = 1e-3, sigma_max: float = 10.0):
        super().__init__()
        self.s2 = float(s2)
        self.mean = float(mean)
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def _denoise(self, x, sigma, prompt):
        s = sigma.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return self.mean + (x - self.mean) / (1 + s**2 / self.s2)
