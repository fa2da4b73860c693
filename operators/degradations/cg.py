"""Conjugate-gradient prox for linear operators without a closed form (a chain, say)."""
from __future__ import annotations

import torch

from operators.degradations._util import rho_tensor
from operators.degradations.base import Degradation


def cg_prox(op: Degradation, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor,
            iters: int = 30, tol: float = 1e-6) -> torch.Tensor:
    """argmin_x ||y - A x||^2 / (2 s2) + rho/2 ||x - z||^2 by CG on (A^T A + alpha I) x =
    A^T y + alpha z, alpha = rho s2 (per batch element), warm-started at z. z: (B, C, H, W)."""
    alpha = rho_tensor(rho, z) * op.prox_sigma2
    dims = tuple(range(1, z.ndim))

    def normal(v: torch.Tensor) -> torch.Tensor:
        return op.adjoint(op.forward(v)) + alpha * v

    x = z.clone()
    r = op.adjoint(y) + alpha * z - normal(x)
    p = r.clone()
    rs = (r * r).sum(dims, keepdim=True)
    rs0 = rs.clamp(min=1e-30)
    for _ in range(iters):
        if bool((rs <= tol**2 * rs0).all()):
            break
        ap = normal(p)
        step = rs / (p * ap).sum(dims, keepdim=True).clamp(min=1e-30)
        x = x + step * p
        r = r - step * ap
        rs_new = (r * r).sum(dims, keepdim=True)
        p = r + (rs_new / rs.clamp(min=1e-30)) * p
        rs = rs_new
    return x
