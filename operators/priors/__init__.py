"""Priors: denoisers D(x, sigma) in pixel or latent space, their codecs, and the registry.

Config shape: ``{"name": "embedded"}``, ``{"name": "embedded", "weights": "path.safetensors"}``,
``{"name": "diffusers", "model": "<path or hub id>", "subfolder": "unet", "prompt": ""}``;
see :func:`build_prior`. Heavy backends (diffusers) are imported only when built.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from operators.priors.base import Codec, GaussianPrior, NFECounter, Prior
from operators.priors.embedded import EmbeddedPixelPrior
from operators.priors.embedded_latent import EmbeddedLatentPrior
from operators.registry import Registry

PriorFactory = Callable[..., Prior]
PRIORS: Registry[PriorFactory] = Registry("prior")


def _embedded(weights: str | None = None, grey: bool = False, dtype: str = "float32", device: str = "cpu") -> Prior:
    """restoray's pixel EDM UNet: weights/embedded_pixel[_grey].safetensors or a path; ``dtype``
    float32, bfloat16 or float16: the UNet's compute precision (operators.priors.precision)."""
    from operators.priors.embedded import DEFAULT_GREY_WEIGHTS, DEFAULT_WEIGHTS

    return EmbeddedPixelPrior.from_weights(weights or (DEFAULT_GREY_WEIGHTS if grey else DEFAULT_WEIGHTS), device,
                                           dtype)


def _embedded_latent(weights: str = "embedded_latent", codec_weights: str | None = None, dtype: str = "float32",
                     device: str = "cpu") -> Prior:
    """restoray's latent EDM UNet with its autoencoder (named in the UNet file's metadata);
    ``dtype``: the UNet's compute precision (the codec stays float32)."""
    return EmbeddedLatentPrior.from_weights(weights, codec_weights, device, dtype)


def _diffusers(
    model: str,
    subfolder: str | None = None,
    scheduler_subfolder: str | None = None,
    vae: str | bool | None = None,
    vae_subfolder: str | None = None,
    prompt: str = "",
    prompt_embeds: str | None = None,
    prediction_type: str | None = None,
    dtype: str = "float32",
    local_files_only: bool | None = None,
    allow_zero_prompt: bool = False,
    device: str = "cpu",
) -> Prior:
    """A diffusers UNet (+ scheduler, VAE, text encoder) from a local path or hub id.

    prompt_embeds: a .safetensors file with a tensor "prompt_embeds" (1, L, D) for ``prompt``.
    allow_zero_prompt: with no text encoder and no prompt_embeds, condition "" on zeros
    (otherwise an error at load).
    """
    from operators.priors.diffusers_loader import load_diffusers_prior

    embeds = None
    if prompt_embeds is not None:
        from safetensors.torch import load_file

        embeds = {prompt: load_file(prompt_embeds)["prompt_embeds"]}
    return load_diffusers_prior(
        model, subfolder=subfolder, scheduler_subfolder=scheduler_subfolder, vae=vae, vae_subfolder=vae_subfolder,
        prompt=prompt, prompt_embeds=embeds, prediction_type=prediction_type, dtype=dtype, device=device,
        local_files_only=local_files_only, allow_zero_prompt=allow_zero_prompt,
    )  # fmt: skip


def _dncnn(weights: str | None = None, device: str = "cpu") -> Prior:
    """DnCNN, ignores sigma: grey DnCNN-S for 25/255 (dncnn_25.pth, the default) or, from a .mat,
    colour blind CDnCNN-B for [0, 55/255] (GD_Color_Blind.mat)."""
    from operators.priors.dncnn import DnCNNPrior

    return DnCNNPrior.from_weights(weights, device)


def _ffdnet(weights: str | None = None, device: str = "cpu") -> Prior:
    """FFDNet, non-blind, sigma in [0, 75/255]: FFDNet_color.mat (default) or FFDNet_gray.mat."""
    from operators.priors.ffdnet import FFDNetPrior

    return FFDNetPrior.from_weights(weights, device)


def _dvdnet(weights: str | None = None, flow: str = "deepflow", device: str = "cpu") -> Prior:
    """DVDnet's spatial stage per frame, sigma in [5, 55]/255; ``weights`` is the folder with
    model_spatial.pth and model_temp.pth (default ../shared/data/weights/dvdnet). The video
    denoiser (both stages, ``flow`` deepflow or dis) is ``prior.video``."""
    from operators.priors.dvdnet import DVDnetPrior, load_dvdnet

    return DVDnetPrior(load_dvdnet(weights, flow=flow, device=device))  # type: ignore[arg-type]


def _gaussian(s2: float = 0.05, mean: float = 0.0, sigma_min: float = 1e-3, sigma_max: float = 10.0,
              device: str = "cpu") -> Prior:
    """The exact Gaussian prior N(mean, s2 I) (tests, sanity checks)."""
    return GaussianPrior(s2=s2, mean=mean, sigma_min=sigma_min, sigma_max=sigma_max)


for _name, _factory in (("embedded", _embedded), ("embedded_latent", _embedded_latent), ("diffusers", _diffusers),
                        ("dncnn", _dncnn), ("dvdnet", _dvdnet), ("ffdnet", _ffdnet), ("gaussian", _gaussian)):
    PRIORS.register(_name, _factory)


def prior_keys(name: str) -> list[str]:
    """The spec keys a prior accepts besides ``name`` (raises UnknownNameError for bad names)."""
    return [p for p in inspect.signature(PRIORS.get(name)).parameters if p != "device"]


def build_prior(spec: dict[str, Any], device: str | torch.device = "cpu") -> Prior:
    """Build a prior from ``{"name": ..., **keys}``; unknown or missing keys fail with the valid ones."""
    if "name" not in spec:
        raise ValueError(f"prior spec needs a 'name'; valid names: {', '.join(PRIORS.names())}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    factory = PRIORS.get(spec["name"])
    params = inspect.signature(factory).parameters
    valid = prior_keys(spec["name"])
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for prior {spec['name']!r}; valid keys: name, {', '.join(valid)}")
    missing = [k for k in valid if params[k].default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ValueError(f"prior {spec['name']!r} needs key(s) {missing}; valid keys: name, {', '.join(valid)}")
    prior = factory(**kwargs, device=str(device))
    return prior.to(device)


__all__ = [
    "PRIORS", "Codec", "EmbeddedLatentPrior", "EmbeddedPixelPrior", "GaussianPrior", "NFECounter", "Prior",
    "build_prior", "prior_keys",
]
