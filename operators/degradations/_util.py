"""Small helpers shared by the degradation families (rho broadcasting, shape checks)."""
from __future__ import annotations

import torch


def rho_tensor(rho: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """rho as a float or (B,) tensor -> a tensor broadcastable against ``like`` (B, C, H, W)."""
    r = torch.as_tensor(rho, dtype=like.real.dtype if like.is_complex() else like.dtype, device=like.device)
    if r.ndim == 0:
        return r
    if r.ndim != 1 or r.shape[0] != like.shape[0]:
        raise ValueError(f"rho must be a float or a (B,) tensor with B={like.shape[0]}, got shape {tuple(r.shape)}")
    return r.view(-1, *([1] * (like.ndim - 1)))


def check_4d(x: torch.Tensor, what: str = "x") -> None:
    if x.ndim != 4:
        raise ValueError(f"{what} must be (B, C, H, W), got shape {tuple(x.shape)}")


def check_divisible(shape: tuple[int, ...], scale: int, op: str) -> None:
    """Raise a clear error when H or W is not a multiple of ``scale``."""
    h, w = shape[-2], shape[-1]
    if h % scale or w % scale:
        raise ValueError(
            f"{op}: H and W must be divisible by the scale {scale}, got {h}x{w}; mod-crop the image first"
        )
