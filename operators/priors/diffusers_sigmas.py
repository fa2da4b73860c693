"""A discrete DDPM schedule seen in EDM units: sigma_t = sqrt((1 - abar_t) / abar_t).

A DDPM model at step t sees x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps = sqrt(abar_t) x_sigma
with x_sigma = x0 + sigma_t eps (ALGORITHMS.md, notation). For a sigma between two steps,
t is found by linear interpolation of log-sigma over the discrete steps (as k-diffusion's
DiscreteSchedule.sigma_to_t does); fractional t is passed to the network as is.
"""
from __future__ import annotations

import torch

# Zero-terminal-SNR schedules (abar_T = 0) get abar_T = 2^-24, as k-diffusion and diffusers do.
MIN_ALPHA_CUMPROD = 2.0**-24
# A sigma that round-trips through float32 lands within ~1e-5 of an integer t; snapping it
# makes D at sigma_t exactly the model at integer step t.
SNAP_TOL = 1e-4


class DiscreteSigmas:
    """sigma <-> t for a model trained on ``alphas_cumprod`` (T,), computed in float64."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        a = torch.as_tensor(alphas_cumprod, dtype=torch.float64).clamp(min=MIN_ALPHA_CUMPROD)
        if a.ndim != 1 or a.numel() < 2:
            raise ValueError(f"alphas_cumprod must be 1-D with >= 2 steps, got shape {tuple(a.shape)}")
        if not bool((a[1:] < a[:-1]).all()):
            raise ValueError("alphas_cumprod must decrease strictly with t")
        self.alphas_cumprod = a
        self.sigmas = ((1 - a) / a).sqrt()
        self.log_sigmas = self.sigmas.log()

    @property
    def num_steps(self) -> int:
        return self.sigmas.numel()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """sigma: (B,) -> fractional t (B,) float64, clamped to [0, T - 1]."""
        ls = self.log_sigmas.to(sigma.device)
        log_sigma = sigma.double().clamp(min=1e-30).log()
        low = (torch.searchsorted(ls, log_sigma) - 1).clamp(0, self.num_steps - 2)
        w = ((log_sigma - ls[low]) / (ls[low + 1] - ls[low])).clamp(0, 1)
        t = low.double() + w
        near = (t - t.round()).abs() < SNAP_TOL
        return torch.where(near, t.round(), t)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Fractional t (B,) -> sigma (B,) float64, by linear interpolation of log-sigma."""
        ls = self.log_sigmas.to(t.device)
        t = t.double().clamp(0, self.num_steps - 1)
        low = t.floor().long().clamp(max=self.num_steps - 2)
        w = t - low.double()
        return ((1 - w) * ls[low] + w * ls[low + 1]).exp()
