"""Baseline `tv`: total-variation regularisation (Rudin, Osher & Fatemi 1992).

Denoising and JPEG artifacts: scikit-image's ``denoise_tv_chambolle``. Linear inverse
problems (blur, sr, inpaint): min_x 1/2 ||A x - y||^2 + lam TV(x) by FISTA (Beck & Teboulle
2009, Alg. 4.1) with the operator's forward/adjoint; the TV prox is Chambolle's dual
projection (Chambolle 2004, Eq. 9), warm-started across outer iterations so a few inner
steps suffice. TV is the coupled colour TV (one norm over channels and both directions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from operators.baselines._util import noise_sigma, per_image
from operators.degradations.base import Degradation

APPLIES = ("denoise", "blur", "sr", "inpaint", "jpeg")


@dataclass(frozen=True)
class TVConfig:
    """Weights scale with the operator's noise sigma (defaults tuned on a BSDS400 training
    image, not on the evaluation sets): denoise weight = ``denoise_per_sigma`` * sigma_n;
    inverse problems lam = ``lam_per_sigma`` * sigma_n; JPEG (no noise sigma) ``jpeg_weight``.
    ``iters`` FISTA iterations with ``inner`` Chambolle steps each."""

    denoise_per_sigma: float = 1.0
    lam_per_sigma: float = 0.2
    jpeg_weight: float = 0.03
    iters: int = 200
    inner: int = 5

    def __post_init__(self) -> None:
        if min(self.denoise_per_sigma, self.lam_per_sigma, self.jpeg_weight) <= 0 or self.iters < 1 or self.inner < 1:
            raise ValueError("tv: weights must be > 0, iters and inner >= 1")


def grad(u: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundary: (B, C, H, W) -> (B, C, 2, H, W)."""
    gy = torch.zeros_like(u)
    gx = torch.zeros_like(u)
    gy[..., :-1, :] = u[..., 1:, :] - u[..., :-1, :]
    gx[..., :, :-1] = u[..., :, 1:] - u[..., :, :-1]
    return torch.stack([gy, gx], 2)


def div(p: torch.Tensor) -> torch.Tensor:
    """The negative adjoint of ``grad``: <grad u, p> = -<u, div p>. (B, C, 2, H, W) -> (B, C, H, W)."""
    py, px = p[:, :, 0], p[:, :, 1]
    dy = torch.cat([py[..., :1, :], py[..., 1:-1, :] - py[..., :-2, :], -py[..., -2:-1, :]], -2)
    dx = torch.cat([px[..., :1], px[..., 1:-1] - px[..., :-2], -px[..., -2:-1]], -1)
    return dy + dx


def tv_prox(f: torch.Tensor, weight: float, p: torch.Tensor, steps: int,
            tau: float = 0.125) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_u 1/2 ||u - f||^2 + weight TV(u) by ``steps`` of Chambolle's projection from the
    dual ``p`` (B, C, 2, H, W); returns (u, p) so the next call can warm-start."""
    for _ in range(steps):
        g = grad(div(p) - f / weight)
        norm = g.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()  # coupled over channels and directions
        p = (p + tau * g) / (1 + tau * norm)
    return f - weight * div(p), p


def operator_norm_sq(degradation: Degradation, y: torch.Tensor, iters: int = 15) -> float:
    """||A||^2 by power iteration on A^T A, started (deterministically) from A^T y."""
    v = degradation.adjoint(y)
    lam = 1.0
    for _ in range(iters):
        w = degradation.adjoint(degradation.forward(v))
        lam = float(w.norm() / v.norm().clamp_min(1e-12))
        v = w / w.norm().clamp_min(1e-12)
    return lam


def fista_tv(y: torch.Tensor, degradation: Degradation, lam: float, iters: int, inner: int) -> torch.Tensor:
    """min_x 1/2 ||A x - y||^2 + lam TV(x): y (B, C, h, w) -> x (B, C, H, W)."""
    step = 1.0 / (1.01 * operator_norm_sq(degradation, y))
    x = degradation.init_estimate(y)
    if degradation.name == "inpaint":  # start the holes at the observed mean colour
        m = degradation.adjoint(torch.ones_like(y))
        mean = (y * m).sum(dim=(2, 3), keepdim=True) / m.sum(dim=(2, 3), keepdim=True).clamp_min(1)
        x = m * y + (1 - m) * mean
    v, t = x, 1.0
    p = torch.zeros(*x.shape[:2], 2, *x.shape[2:], dtype=x.dtype, device=x.device)
    for _ in range(iters):
        z = v - step * degradation.adjoint(degradation.forward(v) - y)
        x_next, p = tv_prox(z, step * lam, p, inner)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        v = x_next + (t - 1) / t_next * (x_next - x)
        x, t = x_next, t_next
    return x.clamp(0, 1)


def baseline_tv(y: torch.Tensor, degradation: Degradation, *, config: TVConfig | None = None) -> torch.Tensor:
    """y (B, C, h, w) -> x (B, C, H, W)."""
    cfg = config or TVConfig()
    if degradation.name in ("denoise", "jpeg"):
        from skimage.restoration import denoise_tv_chambolle

        weight = cfg.jpeg_weight if degradation.name == "jpeg" else cfg.denoise_per_sigma * noise_sigma(degradation)
        return per_image(y, lambda img: denoise_tv_chambolle(img, weight=weight, channel_axis=-1))
    if degradation.name in ("blur", "sr", "inpaint"):
        return fista_tv(y, degradation, cfg.lam_per_sigma * noise_sigma(degradation), cfg.iters, cfg.inner)
    raise ValueError(f"tv applies to {', '.join(APPLIES)}, not {degradation.name!r}")
