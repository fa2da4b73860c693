"""Blending two denoisers' estimates with weights chosen by Stein's unbiased risk estimate.

For Gaussian denoising, y = x + sigma n, and an estimator f, MC-SURE (Ramani, Blu & Unser,
IEEE TIP 2008) estimates its MSE from y alone:

    SURE(f) = ||f(y) - y||^2 - N sigma^2 + 2 sigma^2 div f(y),
    div f(y) ~ b^T (f(y + eps b) - f(y)) / eps,  b ~ N(0, I) (one probe).

For the blend f_w = (1 - w) f_1 + w f_2 it is a quadratic in w,
    SURE(w) = ||r + w d||^2 - N sigma^2 + 2 sigma^2 ((1 - w) div_1 + w div_2),
    r = f_1(y) - y, d = f_2(y) - f_1(y),
minimised at w* = -(r.d + sigma^2 (div_2 - div_1)) / ||d||^2, clipped to [0, 1]. One w per
frame (leading dimension), so w = 0 returns f_1 and the blend's risk is, up to the estimate's
error (tiny over ~10^5 pixels), never above the better of the two.

Each estimator is called twice, on y and on y + eps b, from the same generator state, so a
stochastic sampler is differentiated along one fixed draw of its noise.
"""
from __future__ import annotations

from typing import Callable

import torch

Estimator = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _clone(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None:
        return None
    g = torch.Generator(device=generator.device)
    g.set_state(generator.get_state())
    return g


def estimate_with_divergence(f: Estimator, y: torch.Tensor, probe: torch.Tensor, eps: float,
                             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(y), per-frame MC divergence (T,)): f run on y and on y + eps probe, same draws."""
    fy = f(y, _clone(generator))
    fp = f(y + eps * probe, _clone(generator))
    return fy, (probe * (fp - fy)).flatten(1).sum(1) / eps


def sure_weights(y: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, div1: torch.Tensor,
                 div2: torch.Tensor, sigma: float) -> torch.Tensor:
    """w* per frame (T,) in [0, 1] minimising SURE((1 - w) f1 + w f2)."""
    r, d = (f1 - y).flatten(1).double(), (f2 - f1).flatten(1).double()
    num = (r * d).sum(1) + sigma**2 * (div2.double() - div1.double())
    den = (d * d).sum(1).clamp_min(1e-12)
    return (-num / den).clamp(0, 1).to(y.dtype)


def sure(y: torch.Tensor, f: torch.Tensor, div: torch.Tensor, sigma: float) -> torch.Tensor:
    """Per-frame MC-SURE of an estimate (T,): the expected ||f - x||^2 / N."""
    n = y[0].numel()
    return ((f - y).flatten(1).double().square().sum(1) - n * sigma**2 + 2 * sigma**2 * div.double()) / n


def sure_blend(y: torch.Tensor, sigma: float, f1: Estimator, f2: Estimator, generator: torch.Generator | None,
               eps: float | None = None) -> tuple[torch.Tensor, dict]:
    """(the per-frame SURE-optimal blend of f1(y) and f2(y) (T, C, H, W), diagnostics): the
    weights, and each estimate's and the blend's SURE (MSE per pixel) per frame."""
    if sigma <= 0:
        raise ValueError("a SURE blend needs Gaussian noise of known sigma > 0")
    eps = eps if eps is not None else 0.01 * sigma
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (), generator=generator))) if generator else None
    probe = torch.randn(y.shape, generator=g, dtype=y.dtype).to(y.device)
    a, div_a = estimate_with_divergence(f1, y, probe, eps, generator)
    b, div_b = estimate_with_divergence(f2, y, probe, eps, generator)
    w = sure_weights(y, a, b, div_a, div_b, sigma)
    x = a + w.view(-1, 1, 1, 1) * (b - a)
    div_x = div_a + w * (div_b - div_a)
    info = {"weights": w.tolist(), "sure_1": sure(y, a, div_a, sigma).tolist(),
            "sure_2": sure(y, b, div_b, sigma).tolist(), "sure_blend": sure(y, x, div_x, sigma).tolist()}
    return x, info
