"""Pieces every solver shares: prior set-up, schedules, noise, initialisation, the renoising
step, data consistency (prox, likelihood gradient) and the output. One copy of each."""
from __future__ import annotations

import math
from typing import Callable

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers.base import SolverOutput, karras_sigmas
from operators.solvers.config import SolverConfig
from operators.solvers.generators import GeneratorBatch
from operators.solvers.tiling import TiledPrior, tiled

Callback = Callable[[dict], None]


# -- prior, schedule, randomness -----------------------------------------------------------
def prepare_prior(prior: Prior, config: SolverConfig) -> TiledPrior:
    """The prior wrapped for tiling (see :mod:`tiling`), with its NFE counter reset."""
    wrapped = tiled(prior, config.tile_max_pixels, config.tile_size, config.tile_overlap, config.tile_batch)
    wrapped.nfe.reset()
    return wrapped


def sigma_schedule(prior: Prior, n: int, sigma_min: float | None = None,
                   sigma_max: float | None = None, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022 levels (float64, shape (n + 1,), last 0), clipped to the prior's range."""
    lo, hi = float(prior.sigma_min), float(prior.sigma_max)
    smin = min(max(lo if sigma_min is None else float(sigma_min), lo), hi)
    smax = min(max(hi if sigma_max is None else float(sigma_max), smin), hi)
    return karras_sigmas(n, smin, smax, rho)


def randn_like(x: torch.Tensor, generator: torch.Generator | GeneratorBatch | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn only from ``generator`` (a
    :class:`GeneratorBatch`: each row group from its own generator)."""
    if generator is None:
        raise ValueError("this solver draws noise: pass an explicit torch.Generator")
    if isinstance(generator, GeneratorBatch):
        eps = generator.randn(x.shape)
    else:
        eps = torch.randn(x.shape, generator=generator, dtype=torch.float32, device=generator.device)
    return eps.to(device=x.device, dtype=x.dtype)


def check_nfe(nfe: int, solver: str, minimum: int = 1) -> int:
    if int(nfe) != nfe or nfe < minimum:
        raise ValueError(f"solver {solver!r} needs an integer nfe >= {minimum}, got {nfe!r}")
    return int(nfe)


# -- latent space on any image size --------------------------------------------------------
def encode(prior: Prior, x: torch.Tensor) -> torch.Tensor:
    """E(x), reflect-padding x: (B, C, H, W) up to a multiple of the codec factor first."""
    f = prior.codec.factor if prior.codec is not None else 1
    ph, pw = -x.shape[-2] % f, -x.shape[-1] % f
    if ph or pw:
        mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    return prior.encode(x)


def decode(prior: Prior, z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Dec(z) cropped to ``size`` = (H, W), the inverse of :func:`encode`'s padding."""
    return prior.decode(z)[..., : size[0], : size[1]]


def autoencode(prior: Prior, x: torch.Tensor, sigma: float, prompt: str | None,
               generator: torch.Generator | None = None, noisy: bool = False,
               carried: float = 0.0, noise: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Dec(D(E(x) [+ sigma eps], sigma)): x (B, C, H, W) -> same; pixel priors skip E / Dec.
    ``noisy``: the stochastic auto-encoding of LATINO (noise drawn from ``generator``, or
    ``noise(z)`` when given: video windows share it across frames);
    ``carried``: white noise x already has (pixel priors), so only the rest is added."""
    z = encode(prior, x)
    if noisy:
        extra = math.sqrt(max(sigma**2 - (carried**2 if prior.space == "pixel" else 0.0), 0.0))
        z = z + extra * (randn_like(z, generator) if noise is None else noise(z))
    return decode(prior, prior.denoise(z, sigma, prompt), x.shape[-2:])


# -- initialisation and the renoising step -------------------------------------------------
def initial_state(y: torch.Tensor, degradation: Degradation, prior: Prior, sigma: float,
                  generator: torch.Generator | None) -> torch.Tensor:
    """E(init_estimate(y)) + noise up to level ``sigma``: (B, C, H, W), or the latent
    (B, c, H / f, W / f) for a latent prior. A pixel-space estimate that already carries white
    noise of std ``degradation.init_sigma`` (denoising: y itself) gets only the missing
    sqrt(sigma^2 - init_sigma^2), so a schedule started at sigma_y starts from y as it is."""
    z = encode(prior, degradation.init_estimate(y))
    carried = float(degradation.init_sigma) if prior.space == "pixel" else 0.0
    extra = math.sqrt(max(float(sigma) ** 2 - carried**2, 0.0))
    return z + extra * randn_like(z, generator) if extra > 0 else z


def require_pixel(prior: Prior, solver: str) -> None:
    """Pixel-space solvers refuse latent priors with a pointer to the latent ones."""
    if prior.space != "pixel":
        raise ValueError(f"solver {solver!r} works in pixel space but prior {prior.name!r} is "
                         f"{prior.space}; use latent_dps, reld or langevin")


def renoise(x0: torch.Tensor, eps: torch.Tensor, sigma_next: float, zeta: float,
            generator: torch.Generator | None, carried_var: float | torch.Tensor = 0.0) -> torch.Tensor:
    """x_next = x0 + sigma_next (sqrt(1 - zeta) eps + sqrt(zeta) n) (DiffPIR Alg. 1, DDIM with
    eta^2 = zeta). ``carried_var``: noise variance x0 already carries (DDNM+ Eq. 19), taken off
    the fresh noise so the total stays zeta * sigma_next^2."""
    if sigma_next <= 0:
        return x0
    out = x0 + sigma_next * math.sqrt(1 - zeta) * eps
    fresh_var = torch.clamp(torch.as_tensor(zeta * sigma_next**2 - carried_var, dtype=x0.dtype), min=0)
    if zeta > 0:
        out = out + fresh_var.sqrt() * randn_like(x0, generator)
    return out


def ancestral_zeta(sigma: float, sigma_next: float) -> float:
    """Fresh-noise share of the DDPM ancestral step in EDM form: q(x_next | x, x0) has mean
    x0 + (sigma_next^2 / sigma) eps and variance sigma_next^2 (1 - sigma_next^2 / sigma^2)."""
    return 1.0 - (sigma_next / sigma) ** 2


# -- data consistency ----------------------------------------------------------------------
def _overrides(degradation: Degradation, method: str) -> bool:
    op = getattr(degradation, "wrapped", degradation)  # an operator with a learned init estimate
    return getattr(type(op), method, None) is not getattr(Degradation, method)


def require(degradation: Degradation, method: str, solver: str, why: str = "") -> None:
    """Raise a clear error when ``degradation`` lacks a closed-form ``method`` the solver needs."""
    if not (getattr(degradation, "linear", False) and _overrides(degradation, method)):
        raise ValueError(
            f"solver {solver!r} needs a linear degradation with a closed-form {method}() {why}; "
            f"degradation {getattr(degradation, 'name', type(degradation).__name__)!r} has none"
        )


def differentiable_forward(degradation: Degradation) -> Callable[[torch.Tensor], torch.Tensor]:
    """A(x) for autograd: the operator's ``surrogate`` where it offers one, else ``forward``."""
    surrogate = getattr(degradation, "surrogate", None)
    return surrogate if callable(surrogate) else degradation.forward


def check_prox(degradation: Degradation, solver: str, inexact_steps: int) -> None:
    """An exact prox (``degradation.exact_prox``) is needed unless the config allows
    ``inexact_steps`` gradient steps."""
    if inexact_steps <= 0 and not getattr(degradation, "exact_prox", False):
        raise ValueError(
            f"solver {solver!r} needs a degradation with a closed-form prox() (or set inexact_prox_steps > 0); "
            f"degradation {getattr(degradation, 'name', type(degradation).__name__)!r} has none"
        )


def data_prox(degradation: Degradation, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor,
              inexact_steps: int = 0) -> torch.Tensor:
    """argmin_x ||y - A x||^2 / (2 sigma_n^2) + rho / 2 ||x - z||^2; rho a float or (B,).

    The operator's exact prox where it has one (closed form; for noiseless JPEG the projection
    onto its quantization constraint set, the prox of its indicator for every rho); otherwise
    ``inexact_steps`` gradient steps through A (its surrogate if any) from x = z, step
    1 / (1 / sigma_n^2 + rho), which is 1 / L when the Jacobian of A has norm <= 1. No NFE.
    """
    if getattr(degradation, "exact_prox", False):
        return degradation.prox(z, y, rho)
    A, s2 = differentiable_forward(degradation), degradation.prox_sigma2
    rho = torch.as_tensor(rho, dtype=z.dtype, device=z.device)
    rho = rho.view(-1, *([1] * (z.ndim - 1))) if rho.ndim else rho
    step = 1.0 / (1.0 / s2 + rho)
    x = z.detach().clone()
    for _ in range(inexact_steps):
        with torch.enable_grad():
            x.requires_grad_(True)
            f = (A(x) - y).pow(2).sum() / (2 * s2) + (rho / 2 * (x - z).pow(2)).sum()
            (g,) = torch.autograd.grad(f, x)
        x = (x - step * g).detach()
    return x


def project_feasible(degradation: Degradation, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """P_C(x) where the operator can project onto the convex set C of images consistent with y
    (``degradation.project`` with an exact prox: noiseless JPEG's quantization constraint set);
    x unchanged otherwise. C holds the truth, so the projection never moves an estimate away
    from it: the last step of solvers whose updates only approach the data (DPS, latent DPS)."""
    project = getattr(degradation, "project", None)
    if callable(project) and getattr(degradation, "exact_prox", False):
        return project(x, y)
    return x


def likelihood_grad(degradation: Degradation, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """grad_x log p(y | x) = A^T (y - A x) / sigma_n^2 for Gaussian noise (sigma_n floored
    as in ``prox``): (B, C, H, W)."""
    return degradation.adjoint(y - degradation.forward(x)) / degradation.prox_sigma2


def operator_norm_sq(degradation: Degradation, like: torch.Tensor, generator: torch.Generator,
                     iters: int = 20) -> float:
    """||A||^2 = largest eigenvalue of A^T A by power iteration on an image shaped ``like``."""
    v = randn_like(like, generator)
    lam = 1.0
    for _ in range(iters):
        w = degradation.adjoint(degradation.forward(v))
        lam = float(w.flatten().norm() / v.flatten().norm().clamp_min(1e-12))
        v = w / w.flatten().norm().clamp_min(1e-12)
    return lam


def per_image_norm(r: torch.Tensor) -> torch.Tensor:
    """||r|| per batch item, summed over the batch (gradients stay per image): scalar."""
    return r.flatten(1).norm(dim=1).sum()


# -- callback and output -------------------------------------------------------------------
def emit(callback: Callback | None, **state) -> None:
    """Call ``callback(dict)`` with this step's state (tensors as they are; do not mutate)."""
    if callback is not None:
        callback(state)


def finish(x: torch.Tensor, prior: Prior, std: torch.Tensor | None = None, **extras) -> SolverOutput:
    """The SolverOutput: x clamped to [0, 1] (only here), NFE read off the prior's counter."""
    return SolverOutput(x=x.detach().clamp(0, 1), nfe=prior.nfe.forward,
                        nfe_backward=prior.nfe.backward, std=std, extras=extras)
