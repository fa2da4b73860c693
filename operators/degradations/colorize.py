"""Colorization: RGB -> luma with the ITU-R BT.601 weights; y: (B, 1, H, W) from x: (B, 3, H, W)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from operators.degradations._util import check_4d, rho_tensor
from operators.degradations.base import Degradation, Noise

BT601 = (0.299, 0.587, 0.114)


@dataclass(frozen=True, eq=False)
class Colorize(Degradation):
    """y = w^T x per pixel, w = BT.601 luma weights. A A^T = ||w||^2 (a scalar)."""

    name: ClassVar[str] = "colorize"
    linear: ClassVar[bool] = True
    noise: Noise = field(default_factory=Noise)

    def _w(self, t: torch.Tensor) -> torch.Tensor:
        return torch.tensor(BT601, dtype=t.dtype, device=t.device).view(1, 3, 1, 1)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-3], 1, *shape[-2:])

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-3], 3, *shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_4d(x)
        if x.shape[1] != 3:
            raise ValueError(f"colorize needs RGB input (B, 3, H, W), got {tuple(x.shape)}")
        return (x * self._w(x)).sum(1, keepdim=True)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._w(y)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """A^T (A A^T)^-1 y = w y / ||w||^2."""
        w = self._w(y)
        return y * w / (w**2).sum()

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """(w w^T + alpha I)^-1 r, r = w y + alpha z, by Sherman-Morrison:
        (r - w (w^T r) / (alpha + ||w||^2)) / alpha."""
        w = self._w(z)
        alpha = rho_tensor(rho, z) * self.prox_sigma2
        r = y * w + alpha * z
        return (r - w * (r * w).sum(1, keepdim=True) / (alpha + (w**2).sum())) / alpha

    def init_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """Grey RGB (y in all channels): also consistent (the weights sum to 1) and nearer to
        natural images than the minimum-norm pinv."""
        return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
