"""DDNM / DDNM+: zero-shot restoration by range-null-space decomposition."""
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
class DDNMConfig(SolverConfig):
    """``eta``: DDIM stochasticity (official 0.85), fresh-noise share eta^2; None: DDPM ancestral.
    ``noisy``: DDNM+ scaling for noisy y (False: plain DDNM, exact range-space replacement).
    ``sigma_*``, ``rho``: the Karras schedule (None: the prior's range)."""

    eta: float | None = 0.85
    noisy: bool = True
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float = 7.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eta is not None and not 0 <= self.eta <= 1:
            raise ValueError(f"need 0 <= eta <= 1, got {self.eta}")


def range_space_weight(a: float, sigma_next: float, zeta: float, sigma_y: float) -> float:
    """DDNM+ lambda_t (Wang et al. 2023, Eq. 19): 1 while the fresh noise of the next step
    can absorb y's noise as it enters x_next (sqrt(zeta) sigma_next >= a sigma_y), else the
    ratio of the two stds. ``a``: the weight of x0' in x_next (the paper's a_t)."""
    budget, carried = math.sqrt(zeta) * sigma_next, a * sigma_y
    return 1.0 if carried <= budget else budget / carried


def solve_ddnm(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
               generator: torch.Generator | None, config: DDNMConfig | dict | None = None,
               callback: common.Callback | None = None) -> SolverOutput:
    """DDNM+ (Wang et al., ICLR 2023, Sec. 3.3, Eqs. 17-19) in EDM form; one NFE per step.

    y: (B, C, h, w) -> x: (B, C, H, W). Per step: x0 = D(x_i, sigma_i);
    x0' = x0 + lambda_i A^+ (y - A x0) (Eq. 17; lambda = 1 is DDNM's x0' = A^+ y + (I - A^+ A) x0);
    x_{i+1} = x0' + sigma_{i+1} sqrt(1 - zeta) eps' + fresh noise, eps' = (x_i - x0') / sigma_i,
    so x0' enters with weight a_i = 1 - sqrt(1 - zeta) sigma_{i+1} / sigma_i (DDPM's posterior-mean
    coefficient when zeta is the ancestral share) and the fresh noise variance is
    zeta sigma_{i+1}^2 - (a_i lambda_i sigma_y)^2 (Eq. 18-19: y's noise fills part of the budget).
    No time-travel. Needs ``pinv``. For A = I the range space is everything, so DDNM+ keeps
    close to y (it bounds noise amplification; it is not a denoiser): use it for masks, SR, etc.
    """
    cfg = resolve_config(config, DDNMConfig, "ddnm")
    nfe = common.check_nfe(nfe, "ddnm")
    common.require(degradation, "pinv", "ddnm")
    common.require_pixel(prior, "ddnm")
    prior = common.prepare_prior(prior, cfg)
    sigmas = common.sigma_schedule(prior, nfe, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    sigma_y = degradation.sigma_n if cfg.noisy else 0.0
    with torch.no_grad():
        x = common.initial_state(y, degradation, prior, float(sigmas[0]), generator)
        for i in range(nfe):
            sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
            x0 = prior.denoise(x, sigma, cfg.prompt)
            zeta = common.ancestral_zeta(sigma, sigma_next) if cfg.eta is None else cfg.eta**2
            a = 1 - math.sqrt(1 - zeta) * sigma_next / sigma
            lam = range_space_weight(a, sigma_next, zeta, sigma_y)
            x0 = x0 + lam * degradation.pinv(y - degradation.forward(x0))
            x = common.renoise(x0, (x - x0) / sigma, sigma_next, zeta, generator,
                               carried_var=(a * lam * sigma_y) ** 2)
            common.emit(callback, step=i, sigma=sigma, x=x, denoised=x0, lam=lam)
    return common.finish(x, prior)
