"""Temporal couplings for restoring a window of video frames with an image prior.

Frames of one window are the batch: x (T, C, H, W). Three couplings (ALGORITHMS.md, "Video
Langevin windows", restoray's image-prior variant of LVTINO):

- :func:`shared_noise`: eps_f = sqrt(r) eps_shared + sqrt(1 - r) eps_f, so what the prior
  hallucinates is the same from frame to frame where the content is;
- :func:`anchored_target`: the temporal anchor mu ||x_f - x_f^prev||^2 folded into the data
  step's quadratic (exact: rho ||x - u||^2 + mu ||x - p||^2 = (rho + mu) ||x - m||^2 + const,
  m = (rho u + mu p) / (rho + mu));
- :func:`temporal_tv_prox`: the prox of lam sum_f ||x_{f+1} - x_f||_1 along time (pixelwise 1-D
  TV, solved by projected gradient on the dual, Chambolle 2004);
- :class:`MotionNeighbours`: the motion-compensated neighbours of each frame (DIS flow on the
  prior's proposal, occlusions left out), for a quadratic mu_t ||x_f - n_f||^2 folded into the
  data step like the anchor: a temporal prior that follows the motion.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from operators.solvers.common import randn_like


MIN_FLOW_SIZE = 16  # DIS needs >= 12 px; below 16 a flow says little


def shared_noise(r: float, generator: torch.Generator | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A noise function for :func:`common.autoencode`: unit-variance noise shaped like z (T, ...)
    with correlation ``r`` between any two frames (r = 0: independent frames, r = 1: one draw)."""
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"noise_correlation must be in [0, 1], got {r}")

    def draw(z: torch.Tensor) -> torch.Tensor:
        own = randn_like(z, generator)
        if r == 0.0:
            return own
        common_eps = randn_like(z[:1], generator)
        return math.sqrt(r) * common_eps + math.sqrt(1.0 - r) * own

    return draw


def anchored_target(u: torch.Tensor, rho: torch.Tensor, anchor: torch.Tensor | None,
                    mu: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, weight) so that prox(target, weight) minimises g_y(x) + rho/2 ||x - u||^2 +
    mu rho/2 ||x - anchor||^2 on the frames that have an anchor (``anchor``: (T, C, H, W) with
    NaN on frames without one; None: no anchor). ``mu`` is relative to rho, so the anchor
    weighs as much as the prior's proposal at mu = 1 whatever the noise level.
    rho: (T,) per frame; returns target (T, C, H, W) and weight (T,)."""
    if anchor is None or mu <= 0:
        return u, rho
    has = ~torch.isnan(anchor.flatten(1)).any(dim=1)
    if not bool(has.any()):
        return u, rho
    m = torch.where(has, torch.full_like(rho, mu), torch.zeros_like(rho))
    w = m.view(-1, *([1] * (u.ndim - 1)))
    target = (u + w * torch.nan_to_num(anchor)) / (1.0 + w)
    return target, rho * (1.0 + m)


def temporal_tv_prox(x: torch.Tensor, lam: float, iters: int = 30) -> torch.Tensor:
    """argmin_v 1/2 ||v - x||^2 + lam sum_f |v_{f+1} - v_f| per pixel and channel; x: (T, ...).

    Dual: v = x - D^T p with |p| <= lam on the T - 1 differences; projected gradient with step
    1/4 (||D D^T|| <= 4) converges to the exact prox. lam = 0 or T = 1: x unchanged."""
    if lam <= 0 or x.shape[0] < 2:
        return x
    p = torch.zeros_like(x[1:])
    for _ in range(iters):
        v = x - _dt(p)
        p = (p + 0.25 * (v[1:] - v[:-1])).clamp(-lam, lam)
    return x - _dt(p)


def _dt(p: torch.Tensor) -> torch.Tensor:
    """D^T p for the forward difference (D v)_f = v_{f+1} - v_f: (T - 1, ...) -> (T, ...)."""
    zero = torch.zeros_like(p[:1])
    return torch.cat([zero, p]) - torch.cat([p, zero])


class MotionNeighbours:
    """n (T, C, H, W) = ``self(u)``: per frame f, the mean of frames f - 1 and f + 1 of ``u``
    warped onto it by DIS optical flow on their BT.601 luma, over the pixels that pass the
    forward-backward check (operators.video.flow); u_f itself where no neighbour is visible
    (and for T = 1 or frames under 16 px), so the term never pulls a pixel it knows nothing
    about. The flows are estimated on the first ``u`` it sees (the window's first prior
    proposal) and reused by the later steps: the motion does not change between steps."""

    def __init__(self) -> None:
        self.flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = None

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        from operators.video.flow import consistent, estimate_flow, warp

        if u.shape[0] < 2 or min(u.shape[-2:]) < MIN_FLOW_SIZE:
            return u
        frames = u.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
        if self.flows is None:
            luma = frames @ np.array([0.299, 0.587, 0.114], np.float32) if frames.shape[-1] == 3 else frames[..., 0]
            self.flows = {}
            for f in range(len(frames) - 1):
                fw, bw = estimate_flow(luma[f], luma[f + 1], "dis"), estimate_flow(luma[f + 1], luma[f], "dis")
                self.flows[(f, f + 1)] = (fw, consistent(fw, bw)[..., None].astype(np.float32))
                self.flows[(f + 1, f)] = (bw, consistent(bw, fw)[..., None].astype(np.float32))
        total = np.zeros_like(frames)
        count = np.zeros(frames.shape[:3] + (1,), np.float32)
        for (f, g), (flow, seen) in self.flows.items():
            total[f] += seen * warp(frames[g], flow).reshape(frames[f].shape)
            count[f] += seen
        n = np.where(count > 0, total / np.maximum(count, 1), frames)
        return torch.from_numpy(n).permute(0, 3, 1, 2).to(device=u.device, dtype=u.dtype)


def aligned_neighbours(u: torch.Tensor) -> torch.Tensor:
    """:class:`MotionNeighbours` of ``u`` with flows estimated on ``u`` itself."""
    return MotionNeighbours()(u)
