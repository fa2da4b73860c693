"""Conditional direct diffusion (SR3 / Palette): an EDM denoiser D(x, sigma | mu) of the HQ
image given the LQ one, conditioned by channel concatenation.

Saharia et al., "Image Super-Resolution via Iterative Refinement" (SR3, 2021) and "Palette"
(2022): the denoiser sees the noisy target beside the upsampled LQ image mu. Here the network
is :class:`~operators.priors.edm_unet.EDMUNet` (in_channels 6 = c_in-scaled x and mu, out 3)
with the EDM preconditioning and loss of Karras et al. 2022 (Table 1, Eq. 2), everything in
the [-1, 1] network space (x = 2 hq - 1, mu = 2 upsample(lq) - 1, sigma in those units).

Target, ``target: residual`` (default): the diffusion runs on r = x - mu,
D(x, sigma | mu) = mu + D_r(x - mu, sigma | mu), as SRDiff (Li et al. 2022) and ResShift do,
where SR3 / Palette (``target: image``) denoise x itself. Residual because the EDM
preconditioning assumes a zero-mean target of std sigma_data: r is one (mean 0.005, std 0.24 on
realesrgan x4 64-px BSDS crops; sigma_data 0.25), x given mu is not, and an untrained residual
model returns mu (bicubic) at high sigma. Measured, 100 s of 1-thread CPU training each
(batch 8, 64 px, 32 held-out crops, bicubic 20.9 dB): PSNR of D(x0 + sigma n, sigma | mu) at
sigma 0.2 / 4 was 26.8 / 20.1 dB (residual) vs 23.1 / 17.4 dB (image), one-step sampling
19.7 vs 17.3 dB.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from operators.degradations.blind import upsample
from operators.priors.base import Prior
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig
from operators.priors.json_config import JsonConfig
from operators.priors.model_file import read_model, save_model, unwrap

KIND = "conditional_edm"
DEFAULT_UNET = EDMUNetConfig(in_channels=6, out_channels=3, channels=(24, 48, 96), blocks=(1, 1, 1),
                             emb_dim=64, fourier_features=16, sigma_data=0.25, sigma_max=20.0)


@dataclass(frozen=True)
class ConditionalConfig(JsonConfig):
    """``scale``: LQ -> HQ factor; ``target``: what the diffusion runs on (module docstring);
    ``p_mean``, ``p_std``: training ln sigma ~ N(p_mean, p_std^2) (EDM's P_mean, P_std, network
    units); ``p_top``, ``sigma_top``: the share of training samples drawn at sigma_top instead
    (default 8, the few-step sampler's start = 4 in image units), where D is the regression
    E[x | mu] that a 1-2 NFE restoration returns; the log-normal alone puts ~3% of the samples
    above 7 and left that estimate below bicubic after 2,200 CPU steps (20.60 vs 20.70 dB on 8
    BSDS400 training crops). ``unet``: the backbone (keys given override :data:`DEFAULT_UNET`;
    its sigma_data is that of the target: about 0.25 for the x4 residual, 0.5 with target image)."""

    scale: int = 4
    target: Literal["residual", "image"] = "residual"
    p_mean: float = -1.0
    p_std: float = 1.6
    p_top: float = 0.25
    sigma_top: float = 8.0
    unet: EDMUNetConfig = field(default_factory=lambda: DEFAULT_UNET)

    def __post_init__(self):
        if isinstance(self.unet, dict):
            unet = EDMUNetConfig.from_json(json.dumps({**asdict(DEFAULT_UNET), **self.unet}))
            object.__setattr__(self, "unet", unet)
        if (self.unet.in_channels, self.unet.out_channels) != (6, 3):
            raise ValueError(f"the conditional UNet takes 6 channels (x, mu) and returns 3, got "
                             f"in_channels={self.unet.in_channels}, out_channels={self.unet.out_channels}")
        if self.scale not in (1, 2, 4):
            raise ValueError(f"scale must be 1, 2 or 4, got {self.scale}")
        if self.target not in ("residual", "image"):
            raise ValueError(f"target must be 'residual' or 'image', got {self.target!r}")
        if self.p_std <= 0 or not 0 <= self.p_top <= 1 or self.sigma_top <= 0:
            raise ValueError(f"need p_std > 0, p_top in [0, 1], sigma_top > 0, got {self.p_std}, {self.p_top}, "
                             f"{self.sigma_top}")


class ConditionalUNet(EDMUNet):
    """D(x, sigma | mu): x, mu (B, 3, H, W) in [-1, 1] space, sigma (B,) or a float -> (B, 3, H, W)."""

    def __init__(self, config: ConditionalConfig):
        super().__init__(config.unet)
        self.conditional = config

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, mu: torch.Tensor) -> torch.Tensor:
        if self.conditional.target == "image":
            return super().forward(x, sigma, cond=mu)
        return mu + super().forward(x - mu, sigma, cond=mu)  # D = mu + D_r(x - mu | mu)


def _unwrap(model: torch.nn.Module) -> ConditionalUNet:
    """The ConditionalUNet inside a DDP wrapper (or the model itself)."""
    return unwrap(model, ConditionalUNet)


def build(config: dict) -> ConditionalUNet:
    """A fresh model from config keys (those of :class:`ConditionalConfig`; unknown keys raise)."""
    return ConditionalUNet(ConditionalConfig.from_json(json.dumps(config)))


def condition(lq: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """mu in network space: 2 upsample(lq, size) - 1, (B, 3, H, W)."""
    return 2 * upsample(lq, tuple(size)) - 1


def training_loss(model: torch.nn.Module, hq: torch.Tensor, lq: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """EDM loss on hq given mu (Karras et al. 2022, Eq. 2 with Table 1's lambda(sigma)):
    E lambda(sigma) ||D(x0 + sigma n, sigma | mu) - x0||^2, ln sigma ~ N(p_mean, p_std^2), or
    with probability p_top sigma = sigma_top and the input mu + sigma n (the sampler's start).
    hq: (B, 3, P, P), lq: (B, 3, P / scale, P / scale), both in [0, 1]; noise from ``generator``."""
    net = _unwrap(model)
    s = net.conditional.scale
    if tuple(hq.shape[-2:]) != (lq.shape[-2] * s, lq.shape[-1] * s):
        raise ValueError(f"a x{s} model needs hq {tuple(hq.shape)} = {s} x lq {tuple(lq.shape)}")
    x0, mu = 2 * hq - 1, condition(lq, hq.shape[-2:])
    n = torch.randn(x0.shape[0], generator=generator).to(x0.device)
    c = net.conditional
    top = torch.rand(x0.shape[0], generator=generator).to(x0.device) < c.p_top
    sigma = torch.where(top, torch.full_like(n, c.sigma_top), (c.p_mean + c.p_std * n).exp())
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    # at sigma_top the input is what the sampler starts from, mu + sigma n: there D learns
    # E[x | mu] from mu alone (from x0 + sigma n it reads the residual x0 - mu out of the noise by
    # averaging over the patch, which mu + sigma n does not carry: 19.7 vs 19.1 dB, measured)
    start = torch.where(top.view(-1, 1, 1, 1), mu, x0)
    d = model(start + sigma.view(-1, 1, 1, 1) * eps, sigma, mu)
    return (net.loss_weight(sigma).view(-1, 1, 1, 1) * (d - x0) ** 2).mean()


def save(model: torch.nn.Module, path: str | Path, extra: dict[str, str] | None = None,
         dtype: torch.dtype = torch.float32) -> None:
    """Safetensors with metadata kind and config (JSON); ``extra`` adds strings."""
    net = _unwrap(model)
    save_model(net, path, KIND, net.conditional.to_json(), extra, dtype)


def load(path: str | Path, device: str | torch.device = "cpu") -> ConditionalUNet:
    """Rebuild a :class:`ConditionalUNet` from its file (eval mode); other kinds are refused."""
    config, state = read_model(path, KIND, "a conditional diffusion model")
    net = ConditionalUNet(ConditionalConfig.from_json(config))
    net.load_state_dict(state)
    return net.to(device).eval()


class ConditionalPrior(Prior):
    """The Prior view the solver samples with, on [0, 1] images, sigma in [0, 1] units:
    ``denoise(cat(x, mu), sigma)`` -> D(x, sigma | mu), input (B, 6, H, W), output (B, 3, H, W)
    (so tiling crops x and mu together). Only scaling: x' = 2x - 1, sigma' = 2 sigma."""

    name = "conditional"

    def __init__(self, net: ConditionalUNet):
        super().__init__()
        self.net = net
        self.sigma_min, self.sigma_max = net.config.sigma_min / 2, net.config.sigma_max / 2

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        x, mu = x[:, :3], x[:, 3:]
        return (self.net(2 * x - 1, 2 * sigma.to(x.dtype), 2 * mu - 1) + 1) / 2


class BoundConditionalPrior(Prior):
    """D(x, sigma | mu) with mu fixed: the conditional model as an ordinary pixel prior for one
    batch of LQ images (mu: (B, 3, H, W) in [0, 1]). LatentINDIGO guides DiffBIR, a diffusion
    model conditioned on the LQ image (ControlNet); this is restoray's conditioned denoiser in
    that role. ``inner``: a :class:`ConditionalPrior`, possibly tiled (one NFE per call)."""

    name = "conditional"

    def __init__(self, inner: Prior, mu: torch.Tensor):
        super().__init__()
        self.inner, self.mu = inner, mu
        self.sigma_min, self.sigma_max = inner.sigma_min, inner.sigma_max

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        return self.inner.denoise(torch.cat([x, self.mu.to(x.dtype)], dim=1), sigma)
