"""Denoising: A = I; the noise model (Gaussian, Poisson, none) is the whole degradation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from operators.degradations._util import rho_tensor
from operators.degradations.base import Degradation, Noise


@dataclass(frozen=True, eq=False)
class Denoise(Degradation):
    """y = x + n. x, y: (B, C, H, W)."""

    name: ClassVar[str] = "denoise"
    linear: ClassVar[bool] = True
    noise: Noise = field(default_factory=Noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def init_sigma(self) -> float:
        """y is the initial estimate, and it carries the measurement noise."""
        return self.sigma_n

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """(y / s2 + rho z) / (1 / s2 + rho) (ALGORITHMS.md, denoise)."""
        alpha = rho_tensor(rho, z) * self.prox_sigma2
        return (y + alpha * z) / (1 + alpha)
