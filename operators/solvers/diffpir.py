"""DiffPIR: denoising diffusion models for plug-and-play image restoration."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config


@dataclass(frozen=True)
class DiffPIRConfig(SolverConfig):
    """``lam``: prox weight rho_i = lam / sigma_i^2 (official default 1; deepinv uses 7).
    ``zeta``: share of fresh noise in the renoising step (official 0.1). ``sigma_*``: schedule
    range (None: the prior's), Karras ``rho``. ``inexact_prox_steps`` > 0 allows operators
    without a closed-form prox (gradient steps, see :func:`common.data_prox`)."""

    lam: float = 1.0
    zeta: float = 0.1
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float = 7.0
    inexact_prox_steps: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam <= 0 or not 0 <= self.zeta <= 1:
            raise ValueError(f"need lam > 0 and 0 <= zeta <= 1, got lam={self.lam}, zeta={self.zeta}")


def solve_diffpir(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
                  generator: torch.Generator | None, config: DiffPIRConfig | dict | None = None,
                  callback: common.Callback | None = None) -> SolverOutput:
    """DiffPIR (Zhu et al., CVPR 2023, Alg. 1) in EDM form; one NFE per step.

    y: (B, C, h, w) -> x: (B, C, H, W). Per step: x0 = D(x_i, sigma_i); x0' = prox(x0, rho_i)
    with rho_i = lam / sigma_i^2 (the paper's Eq. 13 rho_t = lam sigma_n^2 / sigma_t^2 after
    dividing its objective by 2 sigma_n^2); eps = (x_i - x0') / sigma_i;
    x_{i+1} = x0' + sigma_{i+1} (sqrt(1 - zeta) eps + sqrt(zeta) n) (Alg. 1, line 7).
    """
    cfg = resolve_config(config, DiffPIRConfig, "diffpir")
    nfe = common.check_nfe(nfe, "diffpir")
    common.check_prox(degradation, "diffpir", cfg.inexact_prox_steps)
    common.require_pixel(prior, "diffpir")
    prior = common.prepare_prior(prior, cfg)
    sigmas = common.sigma_schedule(prior, nfe, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    with torch.no_grad():
        x = common.initial_state(y, degradation, prior, float(sigmas[0]), generator)
        for i in range(nfe):
            sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
            x0 = prior.denoise(x, sigma, cfg.prompt)
            x0 = common.data_prox(degradation, x0, y, cfg.lam / sigma**2, cfg.inexact_prox_steps)
            eps = (x - x0) / sigma
            x = common.renoise(x0, eps, sigma_next, cfg.zeta, generator)
            common.emit(callback, step=i, sigma=sigma, x=x, denoised=x0)
    return common.finish(x, prior)
