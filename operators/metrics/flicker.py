"""Temporal flicker of a video: frame-to-frame change beyond the reference's, or its jitter.

v: (T, C, H, W) in [0, 1] -> () ; a batch of videos (B, T, C, H, W) -> (B,).
"""
from __future__ import annotations

import torch


def _check(v: torch.Tensor, min_frames: int) -> None:
    if v.ndim not in (4, 5) or v.shape[-4] < min_frames:
        raise ValueError(f"expected (T, C, H, W) or (B, T, C, H, W) with T >= {min_frames}, got {tuple(v.shape)}")


def temporal_change(v: torch.Tensor) -> torch.Tensor:
    """Mean |v_{t+1} - v_t| over frames and pixels."""
    _check(v, 2)
    return (v[..., 1:, :, :, :] - v[..., :-1, :, :, :]).abs().flatten(-4).mean(-1)


def flicker(v: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
    """Temporal flicker: mean |v_{t+1} - v_t| minus the same for the reference video.

    Positive: the restoration changes more from frame to frame than the reference does.
    Without a reference, the no-reference :func:`flicker_nr` is returned.
    """
    if ref is None:
        return flicker_nr(v)
    if v.shape != ref.shape:
        raise ValueError(f"video and reference shapes differ: {tuple(v.shape)} vs {tuple(ref.shape)}")
    return temporal_change(v) - temporal_change(ref)


def flicker_nr(v: torch.Tensor) -> torch.Tensor:
    """No-reference flicker: mean |v_{t+2} - 2 v_{t+1} + v_t| (second temporal difference).

    Zero for a static video and for any per-pixel linear change in time (steady fades);
    large when frames alternate. Needs T >= 3.
    """
    _check(v, 3)
    d2 = v[..., 2:, :, :, :] - 2 * v[..., 1:-1, :, :, :] + v[..., :-2, :, :, :]
    return d2.abs().flatten(-4).mean(-1)
