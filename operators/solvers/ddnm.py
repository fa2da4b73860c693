"""DDNM / DDNM+: zero-shot restoration by range-null-space decomposition."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from operators.degradations.base import Degradation
from operators.degradations.blur import PINV_TOL
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DDNMConfig(SolverConfig):
    """``eta``: DDIM stochasticity (official 0.85), fresh-noise share eta^2; None: DDPM ancestral.
    With eta < 1 the components where y is too noisy still take a share of it at every step, and
    it is the same noise every time: on Gaussian deblur (BSDS400 crops) 0.85 lost 1.4-2.3 dB from
    20 to 100 NFE, while eta = 1 (lambda is then 0 or 1 per singular value) held within 0.4 dB.
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


def singular_basis(degradation: Degradation, like: torch.Tensor) -> tuple[Transform, Transform, torch.Tensor]:
    """(V^T, V, s): an orthonormal basis in which A^+ A is diagonal, and A's singular values in it
    (Wang et al. 2023, Sec. 3.3: A = U Sigma V^T; s = 0 on the null space).

    Circular blur (an operator with ``spectrum``): the real FFT (norm="ortho"), s = |K| (0 where
    ``pinv`` drops the frequency). Otherwise two components, the range and the null space of A
    (P v = A^+ A v, an orthogonal projector), with one singular value s_eff for the whole range:
    s_eff^2 = ||A A^+ n||^2 / ||A^+ n||^2 for one probe n ~ N(0, I) shaped like y (fixed seed):
    exactly 1 for masks and A = I, exactly the common value for uniform ones (area SR: 1 / scale),
    and for the rest (bicubic SR) the value that gives A^+ y its mean noise variance
    sigma_y^2 / s_eff^2 over the range."""
    spectrum = getattr(degradation, "spectrum", None)
    if callable(spectrum):
        k, size = spectrum(like).abs(), like.shape[-2:]
        return (lambda v: torch.fft.rfft2(v, norm="ortho"),
                lambda c: torch.fft.irfft2(c, s=size, norm="ortho"),
                torch.where(k > PINV_TOL, k, torch.zeros_like(k)))

    def project(v: torch.Tensor) -> torch.Tensor:
        return degradation.pinv(degradation.forward(v))

    shape = degradation.output_shape(tuple(like.shape))
    probe = degradation.pinv(torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(like))
    s_eff = math.sqrt(float(degradation.forward(probe).pow(2).sum() / probe.pow(2).sum().clamp(min=1e-30)))
    s = torch.tensor([s_eff, 0.0], dtype=like.dtype, device=like.device).view(2, *([1] * like.ndim))
    return (lambda v: torch.stack([project(v), v - project(v)]), lambda c: c.sum(0), s)


def range_space_weights(sigma_next: float, zeta: float, sigma_y: float,
                        s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DDNM+ per singular value s_j (Wang et al. 2023, Eqs. 18-19; official svd_operators in EDM
    form, where x_next = x0' + noise of std sigma_next). Component j of A^+ y carries y's noise
    with std sigma_* = sigma_y / s_j. Returns (lambda, w_eps, w_fresh), each shaped like s:
    x_next = x0 + V lambda V^T A^+ (y - A x0) + V (w_eps V^T eps_hat + w_fresh V^T n).
    - null space (s_j = 0) or sigma_y = 0: lambda = 1 and the DDIM step, w_eps = sqrt(1 - zeta)
      sigma_next, w_fresh = sqrt(zeta) sigma_next;
    - sigma_next >= sigma_*: lambda = 1, y's noise fills part of sigma_next^2 and fresh noise the
      rest, w_eps = 0, w_fresh = sqrt(sigma_next^2 - sigma_*^2);
    - sigma_next < sigma_*: lambda = sqrt(1 - zeta) sigma_next / sigma_* (y's noise stands in for
      the deterministic eps share), w_eps = 0, w_fresh = sqrt(zeta) sigma_next.
    In every case (lambda sigma_*)^2 + w_eps^2 + w_fresh^2 = sigma_next^2."""
    ddim_eps, ddim_fresh = math.sqrt(1 - zeta) * sigma_next, math.sqrt(zeta) * sigma_next
    ones, zeros = torch.ones_like(s), torch.zeros_like(s)
    if sigma_y <= 0:
        return ones, ones * ddim_eps, ones * ddim_fresh
    star = sigma_y / s.clamp(min=1e-30)
    high = star <= sigma_next
    lam = torch.where(high, ones, ddim_eps / star)
    fresh = torch.where(high, (sigma_next**2 - star.clamp(max=sigma_next) ** 2).sqrt(), ones * ddim_fresh)
    null = s <= 0
    return (torch.where(null, ones, lam), torch.where(null, ones * ddim_eps, zeros),
            torch.where(null, ones * ddim_fresh, fresh))


def range_correction(degradation: Degradation, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """x0 -> the move onto {x : A x = y} that DDNM's range-space step scales: A^+ (y - A x0) for
    a linear A with ``pinv``; P(x0) - x0 for an operator whose exact data step is a projection
    (noiseless JPEG: its quantization constraint set, the analogue of A^+ y + (I - A^+ A) x0).
    None when the degradation has neither (DDNM does not apply)."""
    project = getattr(degradation, "project", None)
    if not degradation.linear and callable(project) and getattr(degradation, "exact_prox", False):
        return lambda x0: project(x0, y) - x0
    try:
        common.require(degradation, "pinv", "ddnm")
    except ValueError:
        return None
    return lambda x0: degradation.pinv(y - degradation.forward(x0))


def solve_ddnm(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
               generator: torch.Generator | None, config: DDNMConfig | dict | None = None,
               callback: common.Callback | None = None) -> SolverOutput:
    """DDNM+ (Wang et al., ICLR 2023, Sec. 3.3, Eqs. 17-19) in EDM form; one NFE per step.

    y: (B, C, h, w) -> x: (B, C, H, W). Per step: x0 = D(x_i, sigma_i), eps_hat = (x_i - x0) /
    sigma_i; x0' = x0 + V Lambda_i V^T A^+ (y - A x0) (Eq. 17 per singular value, see
    :func:`singular_basis`; Lambda = I is DDNM's x0' = A^+ y + (I - A^+ A) x0); x_{i+1} = x0' plus
    noise of std sigma_{i+1} per singular value, split between eps_hat, fresh noise and the noise
    y already put into x0' (:func:`range_space_weights`). No time-travel. Needs ``pinv``, or a
    projection onto the measurement's constraint set (noiseless JPEG, :func:`range_correction`). For
    A = I the range space is everything, so DDNM+ keeps close to y (it bounds noise amplification;
    it is not a denoiser): use it for masks, SR, blur.
    """
    cfg = resolve_config(config, DDNMConfig, "ddnm")
    nfe = common.check_nfe(nfe, "ddnm")
    correction = range_correction(degradation, y)
    if correction is None:
        common.require(degradation, "pinv", "ddnm", "(or a projection onto its constraint set, as noiseless JPEG)")
    common.require_pixel(prior, "ddnm")
    prior = common.prepare_prior(prior, cfg)
    sigmas = common.sigma_schedule(prior, nfe, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    sigma_y = degradation.sigma_n if cfg.noisy else 0.0
    with torch.no_grad():
        x = common.initial_state(y, degradation, prior, float(sigmas[0]), generator)
        if degradation.linear:
            to_v, from_v, s = singular_basis(degradation, x)
        else:  # a projection: noiseless, so lambda = 1 and the plain DDIM step everywhere
            to_v, from_v, s = (lambda v: v), (lambda v: v), torch.zeros(1, dtype=x.dtype, device=x.device)
        for i in range(nfe):
            sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
            x0 = prior.denoise(x, sigma, cfg.prompt)
            zeta = common.ancestral_zeta(sigma, sigma_next) if cfg.eta is None else cfg.eta**2
            lam, w_eps, w_fresh = range_space_weights(sigma_next, zeta, sigma_y, s)
            eps = (x - x0) / sigma
            x0 = x0 + from_v(lam * to_v(correction(x0)))
            x = x0
            if sigma_next > 0:
                x = x0 + from_v(w_eps * to_v(eps) + w_fresh * to_v(common.randn_like(x0, generator)))
            common.emit(callback, step=i, sigma=sigma, x=x, denoised=x0, lam=lam)
    return common.finish(x, prior)
