"""Training kinds learned from (HQ, LQ) pairs: the blind methods of issue 12.

Each kind is one module under ``operators/priors`` with the same four functions (``build``,
``training_loss``, ``save``, ``load``); this file only binds one to the train-prior loop:

- ``inn``: PixelINN, the lifting-scheme invertible network of LatentINDIGO (x4, Haar split);
- ``latent_inn``: LatentINN (undecimated split) in the latent space of ``latent_prior`` (a prior
  spec, e.g. ``{name: embedded_latent}``: its codec with the prior's shift and scale, so the
  INN sees the latents indigo guides), or on pixels (upsampled LQ, scale 1) without one;
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


def latent_codec(cfg: dict):
    """The codec (with its latent scaling) of the ``latent_prior`` a latent_inn config names."""
    if cfg["model"] != "latent_inn" or not cfg.get("latent_prior"):
        return None
    from operators.priors import build_prior

    prior = build_prior(dict(cfg["latent_prior"]))
    if prior.codec is None:
        raise ValueError(f"latent_prior {cfg['latent_prior'].get('name')!r} is a pixel prior; a latent_inn "
                         "for a pixel prior trains without latent_prior (on pixels)")
    return prior.codec.requires_grad_(False)


def net_config(cfg: dict, codec=None) -> dict:
    """The model's config keys: the kind's defaults, the ``net`` section, and the channel count
    of the codec's latents for a latent INN."""
    net = {**NET_DEFAULTS.get(cfg["model"], {}), **dict(cfg.get("net") or {})}
    if codec is not None:
        net.setdefault("channels", codec.latent_channels)
    return net


def build_paired(cfg: dict) -> PairedObjective:
    """A fresh model of kind ``cfg["model"]`` (or ``init_weights`` to fine-tune) and its loss."""
    kind = cfg["model"]
    module = method_module(kind)
    codec = latent_codec(cfg)
    model = module.load(cfg["init_weights"]) if cfg.get("init_weights") else module.build(net_config(cfg, codec))
    return PairedObjective(model.train(), kind, module, codec)
