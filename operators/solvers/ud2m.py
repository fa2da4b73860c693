"""UD2M: a trained unfolding of the LATINO Langevin sampler (deep unfolding + distillation)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config
from operators.solvers.presets import task_family
from operators.solvers.unfolded import UD2M, UnfoldingConfig
from operators.solvers.unfolding_file import cached_unfolding, resolve_path

UNTRAINED = "untrained"


@dataclass(frozen=True)
class UD2MConfig(SolverConfig):
    """``unfolding``: None -> the shipped weights/embedded_ud2m.safetensors; a name or path of a
    trained unfolding (train-unfolded job); or ``untrained``: the sampler at its initialisation
    (:class:`UnfoldingConfig` defaults, no adapters), the baseline training starts from.
    ``zeta``: override the unfolding's fresh-noise share of the outer DDIM step.
    ``sigma_max``, ``sigma_min``: override the ends of the unfolding's base schedule (None: its
    own; the learned per-step scales still apply), e.g. from the measurement's level on JPEG,
    whose input is already close: the unfolding's own start (0.4) regenerates detail the
    quantised coefficients still hold.
    ``inexact_prox_steps``: gradient steps for operators without a closed-form prox (as langevin)."""

    unfolding: str | None = None
    zeta: float | None = None
    sigma_max: float | None = None
    sigma_min: float | None = None
    inexact_prox_steps: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.zeta is not None and not 0 <= self.zeta <= 1:
            raise ValueError(f"zeta must be in [0, 1] (or null), got {self.zeta}")
        for key in ("sigma_max", "sigma_min"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0 (or null: the unfolding's own), got {getattr(self, key)}")
        if self.inexact_prox_steps < 0:
            raise ValueError(f"inexact_prox_steps must be >= 0, got {self.inexact_prox_steps}")


def unfolding_model(prior: Prior, unfolding: str | None, degradation: Degradation | None = None) -> UD2M:
    """The UD2M module a config names, on ``prior`` (trained ones loaded once per prior): the
    file's expert for the degradation's operator family where it has one, else its shared
    unfolding (operators/solvers/unfolding_experts.py)."""
    if unfolding == UNTRAINED:
        return UD2M(prior, UnfoldingConfig(), lora=False).requires_grad_(False)
    return cached_unfolding(resolve_path(unfolding), prior, task_family(degradation))


def solve_ud2m(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
               generator: torch.Generator | None, config: UD2MConfig | dict | None = None,
               callback: common.Callback | None = None) -> SolverOutput:
    """UD2M sampling (Kemajou Mbakam, Spence, Pereyra, arXiv 2507.02686, Sec. 3 and its DDIM
    sampler): N = nfe // K outer steps, each K unfolded LATINO steps (operators/solvers/unfolded.py)
    with the trained step parameters, the LoRA-adapted denoiser, and the operator's own prox, so
    the degradation may differ from the ones it was trained on; the unfolding file's expert for
    the operator's family where it has one. NFE = N K, no autograd.

    y: (B, C, h, w) -> x: (B, C, H, W) in [0, 1]."""
    cfg = resolve_config(config, UD2MConfig, "ud2m")
    nfe = common.check_nfe(nfe, "ud2m")
    common.require_pixel(prior, "ud2m")
    common.check_prox(degradation, "ud2m", cfg.inexact_prox_steps)
    model = unfolding_model(prior, cfg.unfolding, degradation)
    K = model.inner_steps
    if nfe < K:
        raise ValueError(f"solver 'ud2m': this unfolding runs outer steps of K = {K} unfolded steps, "
                         f"so nfe must be >= {K} (N = nfe // K outer steps), got {nfe}")
    wrapped = common.prepare_prior(model.prior, cfg)
    with torch.no_grad():
        x = model(y, degradation, nfe // K, generator, prior=wrapped, prompt=cfg.prompt,
                  inexact_prox_steps=cfg.inexact_prox_steps, zeta=cfg.zeta,
                  sigma_range=(cfg.sigma_min, cfg.sigma_max), callback=callback)
    return common.finish(x, wrapped, outer_steps=nfe // K, inner_steps=K)
