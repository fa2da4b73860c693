"""Filling the holes of a masked image: the initial estimate of inpainting solvers.

Normalised convolution at growing scales (Knutsson & Westin 1993): a missing pixel takes the
Gaussian-weighted mean of the observed pixels around it, at the smallest scale whose weights
reach it. Observed pixels keep their values. Smooth, cheap, and far nearer to the image than
zeros, so a solver can start its schedule at a low noise level on random masks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of x: (B, C, H, W) with reflect padding (replicate if too small)."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def fill_holes(y: torch.Tensor, mask: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """y: (B, C, H, W), mask: (H, W) or broadcastable, 1 = observed. Returns y with every
    missing pixel replaced by normalised-convolution averages (scales 1, 2, 4, ... px)."""
    m = mask.to(y.dtype).expand_as(y[:, :1])
    out, todo = y * m, 1 - m
    sigma = 1.0
    while bool(todo.sum() > 0) and sigma <= 2 * max(y.shape[-2:]):
        den = _blur(m, sigma)
        num = _blur(y * m, sigma)
        reach = (den > eps).to(y.dtype) * todo
        out = out + reach * num / den.clamp_min(eps)
        todo = todo - reach
        sigma *= 2
    return out + todo * (y * m).sum(dim=(-2, -1), keepdim=True) / m.sum().clamp_min(1)
