"""Latent DPS, and PSLD's gluing term: posterior sampling through a latent diffusion prior."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config
from operators.solvers.dps import data_loss, guidance_step, guided_denoise, norm_step


@dataclass(frozen=True)
class LatentDPSConfig(SolverConfig):
    """``omega``: step on the data term ||y - A(Dec(z0))||, per step of the 1000-step DDPM schedule
    in the paper's units (pixel residual in [-1, 1], latent as the prior sees it; converted to any
    schedule and NFE by :func:`~operators.solvers.dps.norm_step`; 1.0 measured best of 0.3-10 on
    x4 SR with the embedded latent prior) (``guidance="likelihood"``: step omega (sigma_i^2 -
    sigma_{i+1}^2) on ||y - A(Dec(z0))||^2 / (2 sigma_n^2), see DPSConfig); ``gamma``: step on
    PSLD's gluing term ||z0 - E(A^T y + (I - A^T A) Dec(z0))|| (0 = plain latent DPS; PSLD uses
    0.1; needs ``adjoint``; the same step conversion, residual in the state's units). Both norms
    per image, not squared. ``eta``: None = DDPM ancestral step, else the DDIM mix with fresh-noise
    share eta^2. ``sigma_max``: where the schedule starts, from E(init_estimate(y)) + sigma_max eps
    (None: the prior's); ``sigma_min``, ``rho``: the rest of the Karras schedule."""

    omega: float = 1.0
    guidance: Literal["norm", "likelihood"] = "norm"
    gamma: float = 0.0
    eta: float | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float = 7.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.omega < 0 or self.gamma < 0:
            raise ValueError(f"need omega, gamma >= 0, got {self.omega}, {self.gamma}")
        if self.guidance not in ("norm", "likelihood"):
            raise ValueError(f"guidance must be 'norm' or 'likelihood', got {self.guidance!r}")


def solve_latent_dps(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
                     generator: torch.Generator | None, config: LatentDPSConfig | dict | None = None,
                     callback: common.Callback | None = None) -> SolverOutput:
    """Latent DPS / PSLD (Rout et al., NeurIPS 2023, Alg. 2) in EDM form; one NFE + one backward
    per step (through D and the decoder; with gamma > 0 also through the encoder).

    y: (B, C, h, w) -> x: (B, C, H, W). Per step: z0 = D_lat(z_i, sigma_i), x0 = Dec(z0);
    loss = omega ||y - A(x0)|| + gamma ||z0 - E(A^T y + (I - A^T A) x0)|| (Eq. 9-10);
    z' = ancestral / DDIM step from z0; z_{i+1} = z' - step_i grad_{z_i} loss, step_i the paper's
    step per DDPM step in EDM form (:func:`~operators.solvers.dps.norm_step`). Returns Dec(z_N),
    projected onto the measurement's constraint set where the operator has one (JPEG's QCS).
    A pixel prior (no codec) makes this DPS (``omega`` = ``zeta``) plus the gluing term.
    """
    cfg = resolve_config(config, LatentDPSConfig, "latent_dps")
    nfe = common.check_nfe(nfe, "latent_dps")
    if cfg.gamma > 0:
        common.require(degradation, "adjoint", "latent_dps", "(PSLD gluing, gamma > 0)")
    A = common.differentiable_forward(degradation)
    prior = common.prepare_prior(prior, cfg)
    sigmas = common.sigma_schedule(prior, nfe, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    size = degradation.input_shape(tuple(y.shape))[-2:]
    x_scale = 2.0 if prior.space == "pixel" else 1.0  # the paper's [-1, 1] pixels; latents as they are

    def loss(z0: torch.Tensor, weight: float, glue: float) -> torch.Tensor:
        x0 = common.decode(prior, z0, size)
        out = weight * data_loss(y - A(x0), cfg.guidance, degradation.prox_sigma2)
        if cfg.gamma > 0:
            glued = degradation.adjoint(y) + x0 - degradation.adjoint(degradation.forward(x0))
            out = out + glue * common.per_image_norm(z0 - common.encode(prior, glued))
        return out

    z = common.initial_state(y, degradation, prior, float(sigmas[0]), generator)
    for i in range(nfe):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        weight = guidance_step(cfg.guidance, cfg.omega, sigma, sigma_next, x_scale)
        glue = norm_step(cfg.gamma, sigma, sigma_next, x_scale, r_scale=x_scale) if cfg.gamma > 0 else 0.0
        z0, grad, r = guided_denoise(prior, z, sigma, lambda z0_: loss(z0_, weight, glue), cfg.prompt)
        zeta = common.ancestral_zeta(sigma, sigma_next) if cfg.eta is None else cfg.eta**2
        z = common.renoise(z0, (z - z0) / sigma, sigma_next, zeta, generator) - grad
        common.emit(callback, step=i, sigma=sigma, x=z, denoised=z0, loss=r)
    with torch.no_grad():
        x = common.project_feasible(degradation, common.decode(prior, z, size), y)
    return common.finish(x, prior, loss=r)
