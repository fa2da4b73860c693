"""RELD: regularization by latent denoising, solved by half-quadratic splitting."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config


@dataclass(frozen=True)
class RELDConfig(SolverConfig):
    """``lam``: regularisation weight; the data step uses mu_k = lam / sigma_k^2.
    ``sigma_max``: first denoising level (DPIR's 49/255 ~ 0.2 by default, in the prior's
    units); ``sigma_min``: last level (None: the measurement's sigma_n, as in DPIR, at least
    the prior's minimum); ``rho``: Karras spacing. ``inexact_prox_steps`` as in DiffPIR.
    ``relax``: how far each prior step moves x towards its denoised image u (1: HQS, x <- u, as in
    DPIR; below 1, x <- x - relax (x - u): the gradient step of RED's regulariser, whose gradient
    is x - D(x), i.e. proximal-gradient RED). Below 1 it suits a data step that is a projection
    (JPEG's constraint set: the penalty weight mu_k, which would balance a full step, has no effect
    there, and 20 full latent steps drift inside the wide q10 boxes)."""

    lam: float = 1.0
    sigma_min: float | None = None
    sigma_max: float | None = 0.2
    rho: float = 7.0
    inexact_prox_steps: int = 0
    relax: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam <= 0:
            raise ValueError(f"need lam > 0, got {self.lam}")
        if not 0 < self.relax <= 1:
            raise ValueError(f"need 0 < relax <= 1, got {self.relax}")


def solve_reld(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
               generator: torch.Generator | None = None, config: RELDConfig | dict | None = None,
               callback: common.Callback | None = None) -> SolverOutput:
    """RELD, pixel-split HQS variant (the form of ALGORITHMS.md; the split variable lives in
    pixel space, not the latent-gradient variant of arXiv 2503.22563); nfe iterations, one NFE each.

    y: (B, C, h, w) -> x: (B, C, H, W). From x = init_estimate(y), for k = 1..K:
    u = Dec(D_lat(E(x), sigma_k)) (prior step: the denoiser as the prox of -log p at level
    sigma_k^2; exact for a Gaussian prior); x = prox(u, mu_k), mu_k = lam / sigma_k^2 (data
    step, HQS penalty as in DPIR, Zhang et al. 2021, Eq. 6-7). Deterministic: no noise drawn.
    With an exact Gaussian prior and lam = 1 it converges to the MAP (= posterior mean).
    """
    cfg = resolve_config(config, RELDConfig, "reld")
    nfe = common.check_nfe(nfe, "reld")
    common.check_prox(degradation, "reld", cfg.inexact_prox_steps)
    prior = common.prepare_prior(prior, cfg)
    sigma_min = degradation.sigma_n if cfg.sigma_min is None else cfg.sigma_min
    sigmas = common.sigma_schedule(prior, nfe, sigma_min, cfg.sigma_max, cfg.rho)
    with torch.no_grad():
        x = degradation.init_estimate(y)
        for k in range(nfe):
            sigma = float(sigmas[k])
            u = common.autoencode(prior, x, sigma, cfg.prompt)
            if cfg.relax != 1.0:
                u = x + cfg.relax * (u - x)
            x = common.data_prox(degradation, u, y, cfg.lam / sigma**2, cfg.inexact_prox_steps)
            common.emit(callback, step=k, sigma=sigma, x=x, denoised=u)
    return common.finish(x, prior)

