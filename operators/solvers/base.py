"""What every solver returns, and the shared schedule helpers."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SolverOutput:
    """x: (B, C, H, W) in [0, 1]. ``std`` only for samplers that estimate it (PnP-ULA)."""

    x: torch.Tensor
    nfe: int
    nfe_backward: int = 0
    std: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022 schedule of n levels (float64), followed by a final 0: shape (n + 1,)."""
    if n < 1:
        raise ValueError(f"need at least one step, got {n}")
    i = torch.arange(n, dtype=torch.float64)
    denom = max(n - 1, 1)
    s = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])
