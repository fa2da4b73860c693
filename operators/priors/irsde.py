"""IR-SDE's noise network eps(x_t, mu, t) and its training contract (Luo et al., ICML 2023).

Images, mu and lambda are in [0, 1] units, as in the official code (lambda = 30/255 for SR).
The network is the :class:`~operators.priors.edm_unet.EDMUNet` backbone F(x_in, c_noise)
(not its EDM wrapper): 6 input channels concat[c_in (x_t - mu), mu] (the official
ConditionalUNet's input, scaled), c_noise = t / T, 3 output channels. With ``precondition``
(default) eps = c_skip (x_t - mu) + c_out F, the EDM preconditioning (Karras et al. 2022,
Table 1) rewritten for eps: with x_t - mu = B r + sigma_bar n and r = x0 - mu of std s
(``residual_std``), c_skip (x_t - mu) is the Wiener estimate of n, c_in = 1 / sqrt(B^2 s^2 +
sigma_bar^2), c_skip = sigma_bar c_in^2, c_out = B s c_in. Without it eps = F (the paper's
network), which a short CPU training leaves too weak at large t: the reverse SDE amplifies
x - mu by up to 1 / 0.005 and diverges. The score is -eps / sigma_bar_t. Trained with the
paper's maximum-likelihood loss (Eq. 13, L1): || x_t - [theta_t (mu - x_t) - sigma_t^2 score] dt
- x*_{t-1} ||_1, t ~ U{1..T}, x_t drawn from the marginal (operators/priors/irsde_schedule.py).
The module is a :class:`Prior` only to reuse NFE counting and tiling: ``denoise(concat[x_t, mu],
t)`` returns eps (the time step rides in the sigma slot).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from operators.degradations.blind import SCALES, upsample
from operators.priors.base import Prior
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig
from operators.priors.irsde_schedule import IRSDESchedule, Steps
from operators.priors.json_config import JsonConfig
from operators.priors.model_file import read_model, save_model
from operators.priors.model_file import unwrap as unwrap_model
from operators.priors.padding import crop_to, pad_to_multiple

KIND = "irsde"


@dataclass(frozen=True)
class IRSDEConfig(JsonConfig):
    """``scale``: the LQ -> HQ factor trained for (the network sees only mu at the HQ size, so
    one model may learn several: the training job records them as metadata "scales", which the
    solver checks; :func:`training_loss` takes pairs of any scale in 1, 2, 4); ``T``, ``lam`` (lambda, [0, 1] units),
    ``decay_end`` (e^{-thetabar_T dt}): the SDE; ``precondition``, ``residual_std`` (the std s
    of HQ - mu: ~0.11 for realesrgan x4 pairs, ~0.09 at x1): see the module docstring; the
    rest: the UNet backbone (defaults: 1.14 M parameters; a training step at batch 8, 64 px
    took 0.26 s on one idle CPU thread)."""

    scale: int = 4
    T: int = 100
    lam: float = 30 / 255
    decay_end: float = 0.005
    precondition: bool = True
    residual_std: float = 0.1
    channels: tuple[int, ...] = (16, 32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 2, 2)
    emb_dim: int = 64
    fourier_features: int = 32
    groups: int = 8
    attention: bool = False

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale}")
        if self.residual_std <= 0:
            raise ValueError(f"residual_std must be > 0, got {self.residual_std}")
        self.unet_config()  # validates the backbone fields
        self.schedule()  # validates T, lam, decay_end

    def unet_config(self) -> EDMUNetConfig:
        return EDMUNetConfig(in_channels=6, out_channels=3, channels=self.channels, blocks=self.blocks,
                             emb_dim=self.emb_dim, fourier_features=self.fourier_features, groups=self.groups,
                             attention=self.attention)

    def schedule(self) -> IRSDESchedule:
        return IRSDESchedule(self.T, self.lam, self.decay_end)


class IRSDENet(Prior):
    """eps(x_t, mu, t): x_t, mu (B, 3, H, W) in [0, 1] units, t int or (B,) -> (B, 3, H, W); any H, W."""

    space = "pixel"
    channels = 6
    name = "irsde"

    def __init__(self, config: IRSDEConfig):
        super().__init__()
        self.config = config
        self.schedule = config.schedule()
        self.unet = EDMUNet(config.unet_config())

    def eps(self, x_t: torch.Tensor, mu: torch.Tensor, t: Steps) -> torch.Tensor:
        """The network's noise estimate (no NFE count: training calls this directly)."""
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        y = x_t - mu
        c_in, c_skip, c_out = self.preconditioning(t, x_t)
        x_in, size = pad_to_multiple(torch.cat([c_in * y, mu], dim=1), self.unet.multiple)
        f = crop_to(self.unet.backbone(x_in, t.float() / self.config.T), size)
        return c_skip * y + c_out * f

    def preconditioning(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(c_in, c_skip, c_out), each (B, 1, 1, 1) in ``like``'s dtype; (1, 0, 1) without it."""
        if not self.config.precondition:
            one = torch.ones(t.shape[0], 1, 1, 1, dtype=like.dtype, device=like.device)
            return one, 0 * one, one
        b_s = self.schedule.decay(t.cpu()) * self.config.residual_std
        sigma_bar = self.schedule.sigma_bar(t.cpu())
        c_in = 1 / torch.sqrt(b_s**2 + sigma_bar**2)
        return tuple(c.to(dtype=like.dtype, device=like.device) for c in (c_in, sigma_bar * c_in**2, b_s * c_in))

    def forward(self, x_t: torch.Tensor, mu: torch.Tensor, t: Steps) -> torch.Tensor:
        """:meth:`eps` (so a DDP wrapper's forward runs it)."""
        return self.eps(x_t, mu, t)

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        """x: concat[x_t, mu] (B, 6, H, W); sigma: the step t (B,) -> eps (B, 3, H, W)."""
        return self.eps(x[:, :3], x[:, 3:], sigma)


def unwrap(model: torch.nn.Module) -> IRSDENet:
    """The IRSDENet inside a DDP wrapper (or the model itself)."""
    return unwrap_model(model, IRSDENet)


def build(config: dict) -> IRSDENet:
    """A fresh :class:`IRSDENet` from config keys (unknown keys raise ValueError naming them)."""
    return IRSDENet(IRSDEConfig.from_json(json.dumps(config)))


def training_loss(model: torch.nn.Module, hq: torch.Tensor, lq: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """Luo et al. Eq. 13 (L1, mean): hq (B, 3, P, P), lq (B, 3, P / s, P / s) in [0, 1] with s in
    1, 2, 4; t ~ U{1..T} and the marginal noise drawn from ``generator`` (CPU). Scalar.
    ``model``: an IRSDENet or its DDP wrapper (called through it)."""
    if not any(tuple(hq.shape[-2:]) == (lq.shape[-2] * s, lq.shape[-1] * s) for s in SCALES):
        raise ValueError(f"hq {tuple(hq.shape)} must be s x lq {tuple(lq.shape)} with s in {SCALES}")
    sde = unwrap(model).schedule
    mu = upsample(lq, tuple(hq.shape[-2:]))
    t = torch.randint(1, sde.T + 1, (hq.shape[0],), generator=generator)
    noise = torch.randn(hq.shape, generator=generator).to(hq)
    mean, std = sde.marginal(hq, mu, t)
    x_t = mean + std * noise
    eps = model(x_t, mu, t)
    return (sde.reverse_mean(x_t, eps, mu, t) - sde.optimal_prev(x_t, hq, mu, t)).abs().mean()


def save(model: torch.nn.Module, path: str | Path, extra: dict[str, str] | None = None) -> None:
    """float32 safetensors; metadata: kind "irsde", the JSON config, and ``extra`` strings."""
    model = unwrap(model)
    save_model(model, path, KIND, model.config.to_json(), extra)


def load(path: str | Path, device: str | torch.device = "cpu") -> IRSDENet:
    """Rebuild an :class:`IRSDENet` from its file (eval mode); another kind of file raises."""
    config, state = read_model(path, KIND, "an IR-SDE model")
    model = IRSDENet(IRSDEConfig.from_json(config))
    model.load_state_dict(state)
    return model.to(device).eval()
