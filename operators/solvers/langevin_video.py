"""LATINO on a window of video frames, coupled in time (restoray's LVTINO variant)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import resolve_config
from operators.solvers.langevin import LangevinConfig, step_delta
from operators.solvers.sure_blend import sure_blend
from operators.solvers.temporal import MotionNeighbours, anchored_target, shared_noise, temporal_tv_prox


class VideoDenoiser(Protocol):
    """A video expert: denoises every frame of (T, 3, H, W) using its neighbours (DVDnet)."""

    sigma_min: float
    sigma_max: float

    def denoise_video(self, frames: torch.Tensor, sigma: float) -> torch.Tensor: ...


@dataclass(frozen=True)
class LangevinVideoConfig(LangevinConfig):
    """``window`` / ``overlap``: frames per window and frames shared with the previous window
    (used by the job's window planner; the solver itself restores whatever window it gets).
    ``noise_correlation`` r: correlation of the prior step's noise between frames.
    ``anchor_weight`` mu: weight of ||x_f - x_f^prev||^2 relative to the prior's rho_k, on the frames
    the previous window already restored. ``temporal_tv``: lam of the temporal TV prox after
    each data step (0: off). ``temporal_weight`` mu_t: weight (relative to rho_k) of
    ||x_f - n_f||^2, n_f the frame's motion-compensated neighbours in the prior's proposal
    (:class:`temporal.MotionNeighbours`; 0: off). ``expert_share`` eta: with a video expert, the share of delta_k
    given to its half-step (LVTINO's eta); the image half-step gets 1 - eta. ``warm_start``:
    ``init`` starts from the operator's initial estimate; ``expert`` from the video expert's
    restoration of it (LVTINO's warm start; then start the schedule low, e.g. sigma_max 0.03).
    ``renoise``: add noise up to sigma_k before each prior / expert call (the Langevin sampler);
    False calls them on x as it is at level sigma_k: deterministic half-quadratic splitting with
    the two denoisers, which leans to the MMSE (higher PSNR) rather than a posterior sample.
    ``expert_blend``: ``sure`` (with a video expert, on Gaussian denoising): the result is the
    per-frame blend of the product of experts and the video expert alone whose weight minimises
    Stein's unbiased risk estimate (operators/solvers/sure_blend.py; each run twice for the
    divergence, so 2x the passes); ``none``: the product of experts as it comes."""

    window: int = 8
    overlap: int = 2
    noise_correlation: float = 0.9
    anchor_weight: float = 1.0
    temporal_tv: float = 0.0
    temporal_weight: float = 0.5
    expert_share: float = 0.5
    warm_start: str = "init"
    expert_blend: str = "sure"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 1 or not 0 <= self.overlap < self.window:
            raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {self.window}, {self.overlap}")
        if not 0.0 <= self.noise_correlation <= 1.0 or not 0.0 < self.expert_share < 1.0:
            raise ValueError("need noise_correlation in [0, 1] and expert_share in (0, 1)")
        if self.expert_blend not in ("sure", "none"):
            raise ValueError(f"expert_blend must be 'sure' or 'none', got {self.expert_blend!r}")
        if self.warm_start not in ("init", "expert"):
            raise ValueError(f"warm_start must be 'init' or 'expert', got {self.warm_start!r}")
        if self.anchor_weight < 0 or self.temporal_tv < 0 or self.temporal_weight < 0:
            raise ValueError("anchor_weight, temporal_tv and temporal_weight must be >= 0")


def solve_langevin_video(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
                         generator: torch.Generator | None, config: LangevinVideoConfig | dict | None = None,
                         callback: common.Callback | None = None, anchor: torch.Tensor | None = None,
                         video_prior: VideoDenoiser | None = None) -> SolverOutput:
    """LATINO's K-step split Langevin loop run jointly on the W frames of a window.

    y: (T, C, h, w), the window's frames as the batch -> x: (T, C, H, W). Per step k, with
    rho_k = 1 / (delta_k sigma_k^2) as in :func:`solve_langevin`:

    1. (video expert given: the product of experts of LVTINO Alg. 1, DVDnet standing in for the
       video consistency model) u = V(x + sigma' n, sigma'), sigma' = sigma_k clipped to the
       expert's range, independent noise per frame; x = prox(u, rho_k / eta); at the last step
       the expert's output is returned as LVTINO's code does (no image step after it);
    2. image prior on every frame with noise correlated across frames (coupling a):
       u = Dec(D(E(x) + sigma_k eps_r, sigma_k)); x = prox(u, rho_k [/ (1 - eta)]) with the
       temporal anchor (coupling b) on the frames ``anchor`` holds (NaN elsewhere);
    3. optionally the temporal TV prox (coupling c), and (d) a motion-compensated temporal term
       mu_t ||x_f - n_f||^2 in the data step, n_f = the neighbours f +- 1 of the prior's proposal
       warped onto f by optical flow (occluded pixels excluded).

    With r = 0, mu = 0, no TV and no expert this is :func:`solve_langevin` on the batch, draw
    for draw. NFE: K image-prior calls, plus K video-expert calls when one is given; with the
    SURE blend (``expert_blend``), twice that plus two expert-alone calls.
    """
    cfg = resolve_config(config, LangevinVideoConfig, "langevin_video")
    nfe = common.check_nfe(nfe, "langevin_video")
    common.check_prox(degradation, "langevin_video", cfg.inexact_prox_steps)
    if anchor is not None and anchor.shape[0] != y.shape[0]:
        raise ValueError(f"anchor has {anchor.shape[0]} frames, the window {y.shape[0]}")
    prior = common.prepare_prior(prior, cfg)
    sigmas = common.sigma_schedule(prior, nfe, cfg.sigma_min, cfg.sigma_max, cfg.rho)

    def product(y_: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        x_, calls = _sample(y_, degradation, prior, sigmas, cfg, g, anchor, video_prior, callback)
        passes.append(calls)
        return x_

    passes: list[int] = []
    sigma_y = float(degradation.init_sigma)
    if video_prior is not None and cfg.expert_blend == "sure" and _gaussian_denoising(degradation):
        def expert(y_: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
            passes.append(1)
            return video_prior.denoise_video(y_, _in_range(video_prior, sigma_y))

        with torch.no_grad():
            x, info = sure_blend(y, sigma_y, expert, product, generator)
        out = common.finish(x, prior, expert_nfe=sum(passes), sure=info)
    else:
        x = product(y, generator)
        out = common.finish(x, prior, expert_nfe=sum(passes))
    out.nfe += sum(passes)
    return out


def _gaussian_denoising(degradation: Degradation) -> bool:
    return degradation.name == "denoise" and degradation.noise.peak is None and degradation.init_sigma > 0


def _sample(y: torch.Tensor, degradation: Degradation, prior: Prior, sigmas: torch.Tensor,
            cfg: LangevinVideoConfig, generator: torch.Generator | None, anchor: torch.Tensor | None,
            video_prior: VideoDenoiser | None, callback: common.Callback | None) -> tuple[torch.Tensor, int]:
    """The K-step loop on one window: (x, video-expert calls)."""
    nfe = len(sigmas) - 1
    noise = shared_noise(cfg.noise_correlation, generator)
    neighbours = MotionNeighbours()
    expert_calls = 0
    with torch.no_grad():
        x, carried0 = degradation.init_estimate(y), degradation.init_sigma
        if video_prior is not None and cfg.warm_start == "expert":
            x, carried0 = video_prior.denoise_video(x, _in_range(video_prior, carried0)), 0.0
            expert_calls += 1
        for k in range(nfe):
            sigma = float(sigmas[k])
            carried = carried0 if k == 0 else 0.0
            share = 1.0
            if video_prior is not None:
                u = _expert_step(video_prior, x, sigma, carried if cfg.renoise else sigma, generator)
                expert_calls += 1
                if k == nfe - 1:
                    x = u  # LVTINO returns the last video-expert output
                    common.emit(callback, step=k, sigma=sigma, x=x, denoised=u)
                    break
                rho = 1.0 / (step_delta(cfg, k, u, y, degradation).clamp_min(1e-12) * sigma**2)
                x = _anchored_prox(degradation, u, y, rho / cfg.expert_share, anchor, cfg)
                carried, share = 0.0, 1.0 - cfg.expert_share
            u = common.autoencode(prior, x, sigma, cfg.prompt, generator, noisy=cfg.renoise, carried=carried,
                                  noise=noise)
            rho = 1.0 / (step_delta(cfg, k, u, y, degradation).clamp_min(1e-12) * sigma**2)
            if cfg.temporal_weight > 0:  # (d) mu_t ||x_f - n_f||^2, folded in exactly like the anchor
                u, rho = anchored_target(u, rho, neighbours(u), cfg.temporal_weight)
            x = _anchored_prox(degradation, u, y, rho / share, anchor, cfg)
            x = temporal_tv_prox(x, cfg.temporal_tv)
            common.emit(callback, step=k, sigma=sigma, x=x, denoised=u)
    return x, expert_calls


def _anchored_prox(degradation: Degradation, u: torch.Tensor, y: torch.Tensor, rho: torch.Tensor,
                   anchor: torch.Tensor | None, cfg: LangevinVideoConfig) -> torch.Tensor:
    """The data step with the temporal anchor folded into its quadratic."""
    target, weight = anchored_target(u, rho, anchor, cfg.anchor_weight)
    return common.data_prox(degradation, target, y, weight, cfg.inexact_prox_steps)


def _in_range(expert: VideoDenoiser, sigma: float) -> float:
    return min(max(float(sigma), expert.sigma_min), expert.sigma_max)


def _expert_step(expert: VideoDenoiser, x: torch.Tensor, sigma: float, carried: float,
                 generator: torch.Generator | None) -> torch.Tensor:
    """V(x + sigma' n, sigma'): the video expert at sigma' = sigma clipped to its range,
    adding only the noise x does not already carry."""
    s = _in_range(expert, sigma)
    extra = math.sqrt(max(s**2 - carried**2, 0.0))
    noisy = x + extra * common.randn_like(x, generator) if extra > 0 else x
    return expert.denoise_video(noisy, s)
