"""LATINO-style few-step Langevin: stochastic auto-encoding prior step + proximal data step."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config


@dataclass(frozen=True)
class LangevinConfig(SolverConfig):
    """``delta``: the step delta_k per iteration (the last value repeats), e.g. LATINO's
    x16 SR ``(0.3, 0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2)`` with ``delta_misfit=True``;
    ``delta_misfit``: multiply delta_k by the data misfit ||A u - y|| per image (LATINO's df).
    ``sigma_*``, ``rho``: the K noise levels (Karras; None: the prior's range).
    ``inexact_prox_steps``: gradient steps for the data step of operators without a closed-form
    prox (JPEG through its surrogate); 0 requires the closed form. ``renoise``: add noise up to
    sigma_k before each prior call (the Langevin sampler: a posterior sample); False calls the
    prior on x as it is at level sigma_k, deterministic half-quadratic splitting that leans to
    the MMSE (higher PSNR, a zero spread over ``samples``)."""

    delta: tuple[float, ...] = (1.0,)
    delta_misfit: bool = False
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float = 7.0
    inexact_prox_steps: int = 20
    renoise: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.delta or min(self.delta) <= 0:
            raise ValueError(f"delta must be a non-empty tuple of positive steps, got {self.delta!r}")


def solve_langevin(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
                   generator: torch.Generator | None, config: LangevinConfig | dict | None = None,
                   callback: common.Callback | None = None) -> SolverOutput:
    """LATINO split-step Langevin (Spagnoletti et al., LATINO-PRO, ICCV 2025, Alg. 1 without
    prompt calibration); K = nfe iterations (4-8), one NFE each, no autograd through D.

    y: (B, C, h, w) -> x: (B, C, H, W). From x_0 = init_estimate(y), for k = 1..K:
    u = Dec(D(E(x_{k-1}) + sigma_k eps, sigma_k)) (pixel priors: E = Dec = identity);
    x_k = prox(u, rho_k), rho_k = 1 / (delta_k sigma_k^2) (the official gamma = delta (1 - abar_t)
    / sigma_y^2 in EDM form: with an exact Gaussian prior and delta = 1 the fixed point of the
    two steps is the posterior mean up to O(sigma_k^2 / s^2)). Returns x_K.
    """
    cfg = resolve_config(config, LangevinConfig, "langevin")
    nfe = common.check_nfe(nfe, "langevin")
    common.check_prox(degradation, "langevin", cfg.inexact_prox_steps)
    prior = common.prepare_prior(prior, cfg)
    sigmas = common.sigma_schedule(prior, nfe, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    deltas = []
    with torch.no_grad():
        x = degradation.init_estimate(y)
        for k in range(nfe):
            sigma = float(sigmas[k])
            carried = degradation.init_sigma if k == 0 else 0.0  # x_0 = y carries sigma_y
            u = common.autoencode(prior, x, sigma, cfg.prompt, generator, noisy=cfg.renoise, carried=carried)
            delta = step_delta(cfg, k, u, y, degradation)
            x = common.data_prox(degradation, u, y, 1.0 / (delta.clamp_min(1e-12) * sigma**2),
                                 cfg.inexact_prox_steps)
            deltas.append(delta.tolist())
            common.emit(callback, step=k, sigma=sigma, x=x, denoised=u, delta=deltas[-1])
    return common.finish(x, prior, deltas=deltas)


def step_delta(cfg: LangevinConfig, k: int, u: torch.Tensor, y: torch.Tensor,
               degradation: Degradation) -> torch.Tensor:
    """delta_k per image (B,): the configured step, times the misfit ||A u - y|| with
    ``delta_misfit`` (LATINO's df)."""
    delta = torch.full((y.shape[0],), cfg.delta[min(k, len(cfg.delta) - 1)], dtype=y.dtype, device=y.device)
    if cfg.delta_misfit:
        delta = delta * (degradation.forward(u) - y).flatten(1).norm(dim=1)
    return delta
