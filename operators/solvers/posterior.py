"""Posterior mean and spread of any stochastic solver from S seeded samples in one batched call.

``samples`` and ``estimate`` are orchestration, not algorithm: they live in
:class:`PosteriorConfig` beside a solver spec's ``name`` and ``nfe``, never in the solver's
own config dataclass (so ``solve_<name>`` cannot be handed an ``S`` it would ignore).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers.base import SolverOutput

Estimate = Literal["mean", "sample"]
KEYS = ("samples", "estimate")
DETERMINISTIC = ("reld",)  # draw no noise: S samples would be S identical copies


@dataclass(frozen=True)
class PosteriorConfig:
    """``samples``: S posterior samples per image (1: one plain solver run). ``estimate``: the
    image returned when S > 1, ``"mean"`` (default: the Monte-Carlo MMSE estimate E[x | y],
    best PSNR) or ``"sample"`` (one draw from the posterior, sharper)."""

    samples: int = 1
    estimate: Estimate | None = None

    def __post_init__(self) -> None:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {self.samples!r}")
        if self.estimate not in (None, "mean", "sample"):
            raise ValueError(f"estimate must be 'mean' or 'sample', got {self.estimate!r}")

    @property
    def kind(self) -> str:
        """What a result is: ``"single"`` (one solver run, S = 1), ``"mean"`` or ``"sample"``."""
        return "single" if self.samples == 1 else self.estimate or "mean"


def split_posterior(spec: dict) -> tuple[PosteriorConfig, dict]:
    """(the :class:`PosteriorConfig` of a solver spec's ``samples``/``estimate`` keys, the
    spec without them). Raises ValueError naming the key on a bad value."""
    rest = {k: v for k, v in spec.items() if k not in KEYS}
    return PosteriorConfig(**{k: spec[k] for k in KEYS if k in spec}), rest


def check_posterior(solver: str, posterior: PosteriorConfig) -> None:
    """Refuse S > 1 for a solver that draws no noise (its samples would all be equal)."""
    if posterior.samples > 1 and solver in DETERMINISTIC:
        raise ValueError(f"solver {solver!r} is deterministic (it draws no noise), so its "
                         f"{posterior.samples} samples would be identical; use samples: 1")


def posterior_samples(solve: Callable[..., SolverOutput], y: torch.Tensor, degradation: Degradation,
                      prior: Prior, *, nfe: int, generator: torch.Generator | None, config=None,
                      samples: int = 1, estimate: Estimate = "mean", callback=None) -> SolverOutput:
    """S posterior samples of ``solve`` per image, drawn in ONE batched call, and their summary.

    y: (B, C, h, w) is repeated to (B * S, C, h, w) (image b's samples are rows b S .. b S + S - 1;
    a bound operator shares its mask / kernel over the batch, so every copy sees the same A;
    only video_codec (batch = a clip's frames) and realesrgan (noise per batch row) couple
    rows, and they give no gradient, prox or pinv, so no data step sees the coupling).
    ``callback`` sees the batched state.
    Returns x: (B, C, H, W), the sample mean (``estimate="mean"``, the MMSE estimate) or the
    first sample (``"sample"``); ``std``: (B, C, H, W), the per-pixel sample std (unbiased,
    S - 1 in the denominator). A solver that returns its own std treats each sample as a chain
    summary (PnP-ULA: the chain's mean and std of its iterates): x is the mean of the chain
    means (or chain 0's mean), std^2 = mean within-chain variance + variance of the chain means
    (both over S, the law of total variance), i.e. the spread of all chains' iterates pooled.
    ``nfe``, ``nfe_backward``: the solver's counts for the batched call; each NFE is a batch of
    B S images, so S samples cost S times the compute (and memory) of one.
    ``extras`` gains ``posterior_samples`` (S) and ``estimate`` ("single" / "mean" / "sample").
    S = 1 is exactly ``solve(y, ...)``. Deterministic for a given generator state.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    if estimate not in ("mean", "sample"):
        raise ValueError(f"estimate must be 'mean' or 'sample', got {estimate!r}")
    run = dict(nfe=nfe, config=config, callback=callback)
    if samples == 1:
        out = solve(y, degradation, prior, generator=generator, **run)
        out.extras = {**out.extras, "posterior_samples": 1, "estimate": "single"}
        return out
    if generator is None:
        raise ValueError(f"samples={samples} needs an explicit torch.Generator")
    before = generator.get_state()
    out = solve(y.repeat_interleave(samples, dim=0), degradation, prior, generator=generator, **run)
    if torch.equal(before, generator.get_state()):
        raise ValueError(f"the solver drew no noise, so its {samples} samples are identical; use samples: 1")
    xs = out.x.reshape(y.shape[0], samples, *out.x.shape[1:]).double()
    mean = xs.mean(dim=1)
    if out.std is None:
        var = xs.var(dim=1, correction=1)
    else:  # chain summaries: pooled variance of every chain's iterates
        within = out.std.reshape(xs.shape).double().pow(2).mean(dim=1)
        var = within + xs.var(dim=1, correction=0)
    x = mean if estimate == "mean" else xs[:, 0]
    return SolverOutput(x=x.to(out.x.dtype), nfe=out.nfe, nfe_backward=out.nfe_backward,
                        std=var.sqrt().to(out.x.dtype),
                        extras={**out.extras, "posterior_samples": samples, "estimate": estimate})
