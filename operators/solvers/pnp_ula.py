"""PnP-ULA: plug-and-play unadjusted Langevin sampling, with MMSE and pixel-wise std."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config


@dataclass(frozen=True)
class PnPULAConfig(SolverConfig):
    """``sigma_den``: the denoiser's level, eps = sigma_den^2 (Laumont et al. use (5/255)^2);
    ``alpha``: prior weight. Step delta = ``step`` or ``step_frac`` / (||A||^2 / sigma_n^2 +
    alpha / eps), a fraction of the stability bound 1 / L (ULA's variance bias grows with it).
    ``proj``: delta / lam, the pull onto C = [0, 1] (0 disables). MMSE and std are running
    moments of every ``thin``-th iterate after a ``burn_in`` fraction of the nfe iterations."""

    sigma_den: float = 5 / 255
    alpha: float = 1.0
    step_frac: float = 0.25
    step: float | None = None
    proj: float = 0.5
    burn_in: float = 0.2
    thin: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma_den <= 0 or self.alpha <= 0 or not 0 < self.step_frac < 2:
            raise ValueError("need sigma_den > 0, alpha > 0 and 0 < step_frac < 2")
        if not 0 <= self.burn_in < 1 or self.thin < 1 or not 0 <= self.proj < 1:
            raise ValueError("need 0 <= burn_in < 1, thin >= 1 and 0 <= proj < 1")


def ula_step_size(cfg: PnPULAConfig, degradation: Degradation, like: torch.Tensor,
                  generator: torch.Generator) -> float:
    """delta: the configured step, else step_frac / L with L = ||A||^2 / sigma_n^2 + alpha / eps."""
    if cfg.step is not None:
        return float(cfg.step)
    norm_sq = common.operator_norm_sq(degradation, like, generator)
    lipschitz = norm_sq / degradation.prox_sigma2 + cfg.alpha / cfg.sigma_den**2
    return cfg.step_frac / lipschitz


def solve_pnp_ula(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
                  generator: torch.Generator | None, config: PnPULAConfig | dict | None = None,
                  callback: common.Callback | None = None) -> SolverOutput:
    """PnP-ULA (Laumont et al., SIAM J. Imaging Sci. 2022, Eq. 11); nfe iterations, one NFE each.

    y: (B, C, h, w) -> x: (B, C, H, W) the MMSE (posterior sample mean) and ``std``
    (B, C, H, W), the per-pixel posterior standard deviation. Per iteration:
    x_{k+1} = x_k + delta grad log p(y | x_k) + (alpha delta / eps) (D_eps(x_k) - x_k)
              + (delta / lam) (proj_C(x_k) - x_k) + sqrt(2 delta) xi.
    Needs ``adjoint`` (the likelihood gradient A^T (y - A x) / sigma_n^2).
    """
    cfg = resolve_config(config, PnPULAConfig, "pnp_ula")
    nfe = common.check_nfe(nfe, "pnp_ula")
    common.require(degradation, "adjoint", "pnp_ula", "(the likelihood gradient)")
    common.require_pixel(prior, "pnp_ula")
    prior = common.prepare_prior(prior, cfg)
    if not prior.sigma_min <= cfg.sigma_den <= prior.sigma_max:
        raise ValueError(f"pnp_ula: sigma_den={cfg.sigma_den} is outside the prior's sigma range "
                         f"[{prior.sigma_min}, {prior.sigma_max}]")
    burn = min(int(cfg.burn_in * nfe), nfe - 1)
    with torch.no_grad():
        x = degradation.init_estimate(y)
        delta = ula_step_size(cfg, degradation, x, generator)
        prior_w, eps = cfg.alpha * delta / cfg.sigma_den**2, cfg.sigma_den**2
        mean, m2, count = torch.zeros_like(x, dtype=torch.float64), torch.zeros_like(x, dtype=torch.float64), 0
        for k in range(nfe):
            d = prior.denoise(x, cfg.sigma_den, cfg.prompt)
            drift = delta * common.likelihood_grad(degradation, x, y) + prior_w * (d - x)
            drift = drift + cfg.proj * (x.clamp(0, 1) - x)
            x = x + drift + math.sqrt(2 * delta) * common.randn_like(x, generator)
            if k >= burn and (k - burn) % cfg.thin == 0:  # Welford's running moments
                count += 1
                diff = x.double() - mean
                mean += diff / count
                m2 += diff * (x.double() - mean)
            common.emit(callback, step=k, x=x, denoised=d, delta=delta, eps=eps, samples=count)
    std = (m2 / count).sqrt().float()
    return common.finish(mean.float(), prior, std=std, samples=count, step=delta)
