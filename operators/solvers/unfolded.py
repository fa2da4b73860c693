"""UD2M: the LATINO Langevin kernel unfolded K times inside a short DDIM-like outer loop, with
learned per-step parameters and a LoRA-adapted denoiser (Kemajou Mbakam, Spence, Pereyra,
"Deep unfolding and distillation of diffusion models", arXiv 2507.02686; code charles-kmc/UD2M).

restoray's parametrisation (ALGORITHMS.md, "Deep unfolding + distillation"): the unfolded step
is exactly the ``langevin`` solver's step (operators/solvers/langevin.py), each scalar a
multiplicative correction exp(theta) of a langevin value, theta = 0 at init; with zero LoRA and
N = 1 outer step the sampler is ``langevin`` with nfe = K draw for draw. Per inner step k
(shared by all outer steps, so any N runs at inference; the released code shares them too):
``log_delta`` (delta_k = delta0_k e^theta), ``log_sigma`` (the noise level of the Karras schedule
over the N K steps, times e^theta) and ``log_sigma_d`` (the level told to D, relative to it).
Not implemented from the paper: its prox also couples to x_t, and its t-offset is additive.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.priors.json_config import JsonConfig
from operators.priors.lora import (
    DIFFUSERS_TARGETS,
    EDM_UNET_TARGETS,
    inject_lora,
    load_lora_state,
    lora_layers,
    lora_state_dict,
)
from operators.solvers import common


@dataclass(frozen=True)
class UnfoldingConfig(JsonConfig):
    """What an unfolding is built from (saved in its file). ``inner_steps``: K unfolded steps per
    outer step. ``delta``, ``sigma_min``, ``sigma_max``, ``rho``: the langevin values the learned
    parameters start from (``delta``'s last value repeats; sigmas None: the prior's range).
    ``zeta``: fresh-noise share of the outer DDIM step (the paper's 0.9). ``lora_*``: adapter rank,
    alpha and layer patterns (None: :func:`default_targets` of the prior)."""

    inner_steps: int = 3
    delta: tuple[float, ...] = (2.5,)
    sigma_min: float | None = 0.03
    sigma_max: float | None = 0.4
    rho: float = 7.0
    zeta: float = 0.9
    lora_rank: int = 4
    lora_alpha: float = 4.0
    lora_targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", tuple(float(d) for d in self.delta))
        if self.lora_targets is not None:
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if self.inner_steps < 1 or not self.delta or min(self.delta) <= 0:
            raise ValueError(f"need inner_steps >= 1 and positive deltas, got {self.inner_steps}, {self.delta}")
        if not 0 <= self.zeta <= 1 or self.lora_rank < 0:
            raise ValueError(f"need 0 <= zeta <= 1 and lora_rank >= 0, got {self.zeta}, {self.lora_rank}")

    def but_lora_size(self) -> "UnfoldingConfig":
        """This config with LoRA rank and alpha left out (0): what a wider LoRA must share with
        the unfolding it widens (lora.widen_lora_state)."""
        return replace(self, lora_rank=0, lora_alpha=0.0)


def default_targets(prior: Prior) -> tuple[str, ...]:
    """LoRA layer patterns for the prior's network: the embedded EDM UNet (``net``), a diffusers
    UNet (``unet``), or none (analytic priors)."""
    if isinstance(getattr(prior, "unet", None), nn.Module):
        return DIFFUSERS_TARGETS
    return EDM_UNET_TARGETS if isinstance(getattr(prior, "net", None), nn.Module) else ()


def _safe_sqrt(v: torch.Tensor) -> torch.Tensor:
    """sqrt(max(v, 0)) with a finite gradient at 0."""
    return torch.where(v > 0, v.clamp_min(1e-30).sqrt(), torch.zeros_like(v))


class UD2M(nn.Module):
    """The unfolded sampler; ``forward`` is differentiable in every learned parameter.

    prior: a pixel prior (adapters are injected into it in place when ``lora``)."""

    SCALARS = ("log_delta", "log_sigma", "log_sigma_d")

    def __init__(self, prior: Prior, config: UnfoldingConfig | None = None, lora: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        common.require_pixel(prior, "ud2m")
        self.prior, self.config = prior, config or UnfoldingConfig()
        K = self.inner_steps = self.config.inner_steps
        for name in self.SCALARS:
            setattr(self, name, nn.Parameter(torch.zeros(K)))
        d = self.config.delta
        self.register_buffer("delta0", torch.tensor([d[min(k, len(d) - 1)] for k in range(K)], dtype=torch.float32))
        targets = default_targets(prior) if self.config.lora_targets is None else self.config.lora_targets
        if lora and self.config.lora_rank > 0 and targets:
            inject_lora(prior, targets, self.config.lora_rank, self.config.lora_alpha, generator)

    def levels(self, prior: Prior, n_outer: int, sigma_range: tuple[float | None, float | None] = (None, None),
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise levels, levels told to D): (N, K) float64, inside the prior's range.
        ``sigma_range``: (sigma_min, sigma_max) of the base schedule in place of the config's
        (None: the config's), the learned per-step scales applied on top."""
        cfg, dev = self.config, self.log_sigma.device
        lo_hi = [cfg.sigma_min if sigma_range[0] is None else sigma_range[0],
                 cfg.sigma_max if sigma_range[1] is None else sigma_range[1]]
        base = common.sigma_schedule(prior, n_outer * self.inner_steps, *lo_hi, cfg.rho)
        lo, hi = float(prior.sigma_min), float(prior.sigma_max)
        sig = (base[:-1].to(dev).view(n_outer, self.inner_steps) * self.log_sigma.double().exp()).clamp(lo, hi)
        return sig, (sig * self.log_sigma_d.double().exp()).clamp(lo, hi)

    def forward(self, y: torch.Tensor, degradation: Degradation, n_outer: int, generator: torch.Generator | None,
                *, prior: Prior | None = None, prompt: str | None = None, inexact_prox_steps: int = 0,
                grad_checkpoint: bool = False, zeta: float | None = None,
                sigma_range: tuple[float | None, float | None] = (None, None),
                callback: common.Callback | None = None) -> torch.Tensor:
        """x_hat (B, C, H, W), unclamped, from y (B, C, h, w). For n = 0..N-1 (x = init_estimate(y)
        carrying sigma_y, as in langevin): K steps u = D(x + sqrt(sigma_nk^2 - carried^2) eps,
        sigma'_nk), x = prox(u, 1 / (delta_k sigma_nk^2)); then, before the next block, the DDIM
        step x = x0_hat + s_{n+1} (sqrt(1 - zeta) eps_n + sqrt(zeta) n) (DiffPIR / the paper's
        sampler) with eps_n = (x_t - x0_hat) / s_n, x_t the block's first noisy input and
        s_n = sigma_n0, so the next block's first step adds no noise. ``prior``: a wrapper of
        ``self.prior`` (tiling); ``grad_checkpoint``: recompute each step in backward; ``zeta``:
        overrides the config's; ``sigma_range``: see :meth:`levels`."""
        prior = self.prior if prior is None else prior
        zeta = self.config.zeta if zeta is None else zeta
        sig, sig_d = self.levels(prior, n_outer, sigma_range)
        delta = self.delta0 * self.log_delta.exp()
        step = partial(self.step, y=y, degradation=degradation, prior=prior, prompt=prompt,
                       inexact_prox_steps=inexact_prox_steps)
        x = degradation.init_estimate(y)
        carried = torch.tensor(float(degradation.init_sigma), dtype=torch.float64, device=sig.device)
        for n in range(n_outer):
            for k in range(self.inner_steps):
                args = (x, common.randn_like(x, generator), sig[n, k], sig_d[n, k], delta[k], carried)
                x, u, noisy = checkpoint(step, *args, use_reentrant=False) if grad_checkpoint else step(*args)
                x_t = noisy if k == 0 else x_t
                carried = torch.zeros_like(carried)
                if callback is not None:  # (no device syncs otherwise)
                    common.emit(callback, step=n * self.inner_steps + k, sigma=float(sig[n, k].detach()), x=x,
                                denoised=u, delta=float(delta[k].detach()))
            if n + 1 < n_outer:
                x = common.renoise(x, (x_t - x) / sig[n, 0], sig[n + 1, 0], zeta, generator)
                carried = sig[n + 1, 0]
        return x

    @staticmethod
    def step(x, noise, sigma, sigma_d, delta, carried, *, y, degradation, prior, prompt, inexact_prox_steps):
        """One unfolded LATINO step (langevin.py's loop body): (x_next, u, noisy input)."""
        noisy = x + _safe_sqrt(sigma**2 - carried**2) * noise
        u = prior.denoise(noisy, sigma_d, prompt)
        rho = 1.0 / (delta.expand(x.shape[0]).clamp_min(1e-12) * sigma**2)
        return common.data_prox(degradation, u, y, rho, inexact_prox_steps), u, noisy

    # -- what a trained unfolding stores ---------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The learned scalars (``ud2m.<name>``) and the adapters (names inside the prior)."""
        return {**{f"ud2m.{n}": getattr(self, n) for n in self.SCALARS}, **lora_state_dict(self.prior)}

    def load_trainable_state(self, state: dict[str, torch.Tensor], meta: dict[str, str], merge: bool = False) -> None:
        """Inverse of :meth:`trainable_state_dict`; adapters injected as ``meta`` names them."""
        with torch.no_grad():
            for n in self.SCALARS:
                getattr(self, n).copy_(state[f"ud2m.{n}"])
        load_lora_state(self.prior, {k: v for k, v in state.items() if not k.startswith("ud2m.")}, meta, merge)

    def learned(self) -> dict[str, list[float]]:
        """The effective per-step values (for logs and model cards)."""
        with torch.no_grad():
            return {"delta": (self.delta0 * self.log_delta.exp()).tolist(),
                    "sigma_scale": self.log_sigma.exp().tolist(), "sigma_d_scale": self.log_sigma_d.exp().tolist(),
                    "lora_layers": len(lora_layers(self.prior))}
