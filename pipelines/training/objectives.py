"""What each training kind builds, its loss, and how its weights are saved.

- pixel: EDM UNet on [-1, 1] images; EDM loss (Karras et al. 2022, Eq. 2 with Table 1's
  lambda(sigma) and log-normal sigma sampling, P_mean/P_std).
- codec: the embedded codec, ``net: {arch: block}`` (block PCA + learned corrections, its PCA
  fitted on the first batches; the default) or ``{arch: conv}`` (the first conv autoencoder);
  L2 + 0.1 L1 reconstruction loss.
- latent: EDM UNet on the frozen codec's latents, shifted and scaled to std sigma_data = 0.5
  (LatentPriorConfig, stored in the weights' metadata with the codec's name).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from operators.priors.autoencoder import (
    AutoencoderConfig,
    ConvAutoencoder,
    load_autoencoder,
    save_autoencoder,
)
from operators.priors import Prior, build_prior
from operators.priors.base import Codec
from operators.priors.block_codec import BlockCodec, BlockCodecConfig, save_block_codec
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, load_edm_unet, read_metadata, save_edm_unet
from operators.priors.embedded_latent import METADATA_KEY, LatentPriorConfig, latent_config_from_metadata
from operators.priors.paths import WEIGHTS_DIR


@dataclass
class Objective:
    model: torch.nn.Module
    kind: str
    p_mean: float = -1.2
    p_std: float = 1.2
    codec: Codec | None = None
    latent: LatentPriorConfig | None = None
    teacher: Prior | None = None
    teacher_weight: float = 1.0

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] image batch -> what the network sees ([-1, 1] pixels or scaled latents)."""
        if self.kind == "latent":
            with torch.no_grad():
                return (self.codec.encode(x) - self.latent.latent_shift) * self.latent.latent_scale
        return 2 * x - 1

    def loss(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.kind == "codec":
            rec = self.model(x)
            return F.mse_loss(rec, x) + 0.1 * F.l1_loss(rec, x)
        x0 = self.to_model_space(x)
        n = torch.randn(x0.shape[0], generator=g).to(x0.device)
        sigma = (self.p_mean + self.p_std * n).exp()
        noise = torch.randn(x0.shape, generator=g).to(x0.device) * sigma.view(-1, 1, 1, 1)
        net = self.model.module if hasattr(self.model, "module") else self.model
        d = self.model(x0 + noise, sigma)
        w = net.loss_weight(sigma).view(-1, 1, 1, 1)
        loss = (w * (d - x0) ** 2).mean()
        if self.teacher is not None:
            loss = loss + self.teacher_weight * (w * self.teacher_gap(d, x0 + noise, sigma)).mean()
        return loss

    def teacher_gap(self, d: torch.Tensor, x_noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """(d - T)^2 where T is the teacher's estimate in model space ([-1, 1]: a pixel teacher
        sees (x + 1) / 2 at sigma / 2), zero for samples whose sigma is outside its range.
        Knowledge distillation: the teacher's MMSE estimate is a low-variance target."""
        s_pix = sigma / 2
        inside = (s_pix <= self.teacher.sigma_max).to(d.dtype).view(-1, 1, 1, 1)
        with torch.no_grad():
            t = 2 * self.teacher.denoise((x_noisy + 1) / 2, s_pix.clamp(max=self.teacher.sigma_max)) - 1
        return inside * (d - t) ** 2

    def save(self, model: torch.nn.Module, path: str, extra: dict | None = None) -> None:
        meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (extra or {}).items()}
        if self.kind == "codec":
            save = save_block_codec if isinstance(model, BlockCodec) else save_autoencoder
            save(model, path, dtype=torch.float16, extra=meta)
        else:
            if self.kind == "latent":
                meta[METADATA_KEY] = self.latent.to_json()
            save_edm_unet(model, path, extra=meta, dtype=torch.float16)


FIT_BATCHES = 8  # batches of patches a new codec fits its PCA on (a new latent prior its scale)


def fit_sample(draw: Callable[[], torch.Tensor]) -> torch.Tensor:
    """FIT_BATCHES batches from ``draw`` in one tensor."""
    return torch.cat([draw() for _ in range(FIT_BATCHES)])


def build_objective(cfg: dict, draw: Callable[[], torch.Tensor]) -> Objective:
    """cfg: the train-prior config as a dict; draw(): one batch of training patches, called
    only by what fits something to the data before training (a new block codec's PCA, a new
    latent prior's latent scale: :func:`fit_sample`), never when ``init_weights`` continues one.
    Kinds trained on (HQ, LQ) pairs are built by :mod:`pipelines.training.paired_objective`."""
    from pipelines.training.paired_objective import PAIRED, build_paired

    kind = cfg["model"]
    if kind in PAIRED:
        return build_paired(cfg)
    net_cfg = dict(cfg.get("net") or {})
    if kind == "codec":
        return Objective(_codec(cfg, net_cfg, draw), kind)
    if kind == "pixel":
        c = 1 if cfg["grey"] else 3
        net = (load_edm_unet(cfg["init_weights"]) if cfg.get("init_weights")
               else EDMUNet(EDMUNetConfig(in_channels=c, out_channels=c, **net_cfg)))
        teacher = build_prior(cfg["teacher"]).requires_grad_(False) if cfg.get("teacher") else None
        return Objective(net, kind, cfg["p_mean"], cfg["p_std"], teacher=teacher,
                         teacher_weight=cfg.get("teacher_weight", 1.0))
    if kind == "latent":
        codec = load_autoencoder(cfg["codec"]).requires_grad_(False)
        if cfg.get("init_weights"):  # continue: keep the latent scaling the network learned with
            net = load_edm_unet(cfg["init_weights"])
            latent = latent_config_from_metadata(read_metadata(cfg["init_weights"]), cfg["init_weights"])
        else:
            with torch.no_grad():
                latent = LatentPriorConfig.fit(codec.encode(fit_sample(draw)), codec=_codec_name(cfg["codec"]))
            c = codec.latent_channels
            net = EDMUNet(EDMUNetConfig(in_channels=c, out_channels=c, **net_cfg))
        return Objective(net, kind, cfg["p_mean"], cfg["p_std"], codec=codec, latent=latent)
    raise ValueError(f"unknown training model {kind!r}; valid choices: pixel, codec, latent, {', '.join(PAIRED)}")


def _codec(cfg: dict, net_cfg: dict, draw: Callable[[], torch.Tensor]) -> Codec:
    """The codec to train: ``init_weights`` to continue, else a new one of ``net.arch``."""
    if cfg.get("init_weights"):
        return load_autoencoder(cfg["init_weights"]).train()
    arch = net_cfg.pop("arch", "block")
    channels = 1 if cfg["grey"] else 3
    if arch == "conv":
        return ConvAutoencoder(AutoencoderConfig(in_channels=channels, **net_cfg))
    if arch != "block":
        raise ValueError(f"config key 'net.arch': unknown codec architecture {arch!r}; valid: block, conv")
    return BlockCodec(BlockCodecConfig(in_channels=channels, **net_cfg)).fit_pca(fit_sample(draw))


def _codec_name(path: str) -> str:
    """A codec inside weights/ is recorded by name (portable), any other by its path."""
    p = Path(path).resolve()
    return p.stem if p.parent == WEIGHTS_DIR.resolve() else str(p)
