"""Training kinds learned from (HQ, LQ) pairs: the blind methods of issue 12.

Each kind is one module under ``operators/priors`` with the same four functions (``build``,
``training_loss``, ``save``, ``load``); this file only binds one to the train-prior loop:

- ``inn``: PixelINN, the lifting-scheme invertible network of LatentINDIGO (x4, Haar split);
- ``latent_inn``: LatentINN (undecimated split) on the latents of ``codec`` (a trained
  autoencoder's weights), or on pixels (upsampled LQ, scale 1) when no codec is given;
- ``conditional``: the EDM denoiser conditioned on the upsampled LQ (SR3 / Palette);
- ``irsde``: the IR-SDE noise network eps(x_t, mu, t) (Luo et al. 2023).
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

PAIRED = {"inn": "operators.priors.inn", "latent_inn": "operators.priors.inn",
          "conditional": "operators.priors.conditional", "irsde": "operators.priors.irsde"}
NET_DEFAULTS = {"inn": {"split": "haar"}, "latent_inn": {"split": "undecimated"}}


def method_module(kind: str) -> ModuleType:
    return importlib.import_module(PAIRED[kind])


@dataclass
class PairedObjective:
    model: torch.nn.Module
    kind: str
    module: ModuleType
    codec: Any = None

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        hq, lq = batch
        extra = {"codec": self.codec} if self.kind == "latent_inn" else {}
        return self.module.training_loss(self.model, hq, lq, g, **extra)

    def save(self, model: torch.nn.Module, path: str, extra: dict | None = None) -> None:
        meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (extra or {}).items()}
        meta["training_kind"] = self.kind
        self.module.save(model, path, extra=meta)


def net_config(cfg: dict) -> dict:
    """The model's config keys: the kind's defaults, the ``net`` section, and the channel count
    of the codec's latents for a latent INN."""
    net = {**NET_DEFAULTS.get(cfg["model"], {}), **dict(cfg.get("net") or {})}
    if cfg["model"] == "latent_inn" and cfg.get("codec"):
        from operators.priors.autoencoder import load_autoencoder

        net.setdefault("channels", load_autoencoder(cfg["codec"]).config.latent_channels)
    return net


def build_paired(cfg: dict) -> PairedObjective:
    """A fresh model of kind ``cfg["model"]`` (or ``init_weights`` to fine-tune) and its loss."""
    kind = cfg["model"]
    module = method_module(kind)
    model = module.load(cfg["init_weights"]) if cfg.get("init_weights") else module.build(net_config(cfg))
    codec = None
    if kind == "latent_inn" and cfg.get("codec"):
        from operators.priors.autoencoder import load_autoencoder

        codec = load_autoencoder(cfg["codec"]).requires_grad_(False)
    return PairedObjective(model.train(), kind, module, codec)
