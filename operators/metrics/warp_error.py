"""Flow-compensated temporal error: the warping error of Lai et al. ("Learning Blind Video
Temporal Consistency", ECCV 2018, Eq. 9), with an L1 distance.

    E = mean_t [ sum_x M_t(x) mean_c |v_t(x) - warp(v_{t+1}, F_t)(x)| / sum_x M_t(x) ]

F_t is the flow from frame t to t+1 (:func:`operators.video.flow.estimate_flow`, DIS, on
BT.601 luma at 8 bits), estimated on the REFERENCE video when one is given, else on ``v``
itself, so that a restoration is not credited for motion it invented or smeared. M_t keeps the
pixels that pass the forward-backward check (Sundaram et al. 2010: |F + F_b(x + F)|^2 <
0.01 (|F|^2 + |F_b|^2) + 0.5 px^2) and whose match lies inside frame t+1; occluded and
disoccluded pixels are left out. Pairs with no such pixel are skipped (NaN if all are).
Values are in [0, 1] units (x 255 for 8-bit levels). A static video scores 0; flicker, noise
and temporally unstable detail raise it. Report the reference's own value beside
(:func:`warp_error_pair`): flow and interpolation errors give even the clean video a floor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from operators.metrics.ycbcr import rgb_to_y
from operators.video.flow import consistent, estimate_flow, warp

Video = torch.Tensor | np.ndarray


@dataclass(frozen=True)
class WarpError:
    """``video``: the warp error of the video; ``reference``: the reference's own, with the same
    flows and masks (the floor for a restoration of it)."""

    video: float
    reference: float


def _frames(v: Video) -> torch.Tensor:
    t = torch.as_tensor(v).detach().float().cpu()
    if t.ndim != 4 or t.shape[0] < 2 or t.shape[1] not in (1, 3):
        raise ValueError(f"expected a video (T, C, H, W) with T >= 2 and C = 1 or 3, got {tuple(t.shape)}")
    return t


def compensation(v: Video) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pair (t, t+1): the flow F_t (H, W, 2) from frame t to t+1 and the mask M_t (H, W)."""
    luma = rgb_to_y(_frames(v))[:, 0].numpy()
    out = []
    for a, b in zip(luma[:-1], luma[1:]):
        fw, bw = estimate_flow(a, b, "dis"), estimate_flow(b, a, "dis")
        out.append((fw, consistent(fw, bw)))
    return out


def _error(v: Video, pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    frames = _frames(v).permute(0, 2, 3, 1).contiguous().numpy()
    if len(frames) != len(pairs) + 1:
        raise ValueError(f"{len(frames)} frames but {len(pairs)} flows")
    per_pair = []
    for t, (flow, mask) in enumerate(pairs):
        if mask.any():
            diff = np.abs(frames[t] - warp(frames[t + 1], flow)).mean(-1)
            per_pair.append(float(diff[mask].mean()))
    return float(np.mean(per_pair)) if per_pair else float("nan")


def warp_error(v: Video, ref: Video | None = None) -> float:
    """E for v (T, C, H, W) in [0, 1], torch or numpy, with flow from ``ref`` (same shape) if given."""
    if ref is not None and tuple(np.shape(ref)) != tuple(np.shape(v)):
        raise ValueError(f"video and reference shapes differ: {tuple(np.shape(v))} vs {tuple(np.shape(ref))}")
    return _error(v, compensation(v if ref is None else ref))


def warp_error_pair(v: Video, ref: Video) -> WarpError:
    """E of ``v`` and of ``ref`` itself, both with the reference's flows and masks (estimated once)."""
    if tuple(np.shape(ref)) != tuple(np.shape(v)):
        raise ValueError(f"video and reference shapes differ: {tuple(np.shape(v))} vs {tuple(np.shape(ref))}")
    pairs = compensation(ref)
    return WarpError(video=_error(v, pairs), reference=_error(ref, pairs))
