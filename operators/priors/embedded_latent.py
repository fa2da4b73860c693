"""The embedded latent prior: the EDM UNet on the latent of restoray's own autoencoder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from operators.priors.autoencoder import load_autoencoder
from operators.priors.base import Codec, Prior
from operators.priors.edm_unet import EDMUNet, load_edm_unet, read_metadata
from operators.priors.json_config import JsonConfig
from operators.priors.paths import missing_weights_error, shipped_weights
from operators.priors.precision import compute_dtype, run_network
from operators.priors.scaled_codec import ScaledCodec

DEFAULT_WEIGHTS = "embedded_latent"
DEFAULT_CODEC = "embedded_codec"
METADATA_KEY = "latent_prior"


@dataclass(frozen=True)
class LatentPriorConfig(JsonConfig):
    """Saved as metadata["latent_prior"] (JSON) in the latent UNet's safetensors file.

    The denoiser sees z = (E(x) - latent_shift) * latent_scale, chosen by the training job
    so that z has standard deviation sigma_data (0.5), as the EDM preconditioning assumes.
    """

    codec: str = DEFAULT_CODEC  # a name in weights/ or a path to the codec's .safetensors
    latent_shift: float = 0.0
    latent_scale: float = 1.0


    @staticmethod
    def fit(latents: torch.Tensor, codec: str = DEFAULT_CODEC, sigma_data: float = 0.5) -> "LatentPriorConfig":
        """Shift and scale from a sample of raw latents (B, c, h, w): zero mean, std sigma_data."""
        z = latents.detach().double()
        return LatentPriorConfig(codec, float(z.mean()), float(sigma_data / z.std()))


def latent_config_from_metadata(meta: dict[str, str], path: str | Path) -> LatentPriorConfig:
    """metadata["latent_prior"] (JSON), or the training job's plain ``latent_scale`` (+ ``codec``).

    A plain ``latent_scale`` is the standard deviation the raw latents were divided by
    (pipelines/training/objectives.py), i.e. the multiplier here is its inverse, shift 0.
    """
    if METADATA_KEY in meta:
        return LatentPriorConfig.from_json(meta[METADATA_KEY])
    if "latent_scale" in meta:
        codec = meta.get("codec") or DEFAULT_CODEC
        return LatentPriorConfig(codec=codec, latent_shift=0.0, latent_scale=1.0 / float(meta["latent_scale"]))
    raise ValueError(f"{path} has neither {METADATA_KEY!r} nor 'latent_scale' metadata: not a latent prior file")


class EmbeddedLatentPrior(Prior):
    """D(z, sigma) on scaled latents z (B, c, H/4, W/4); sigma in those latent units.

    ``encode``/``decode`` (through ``self.codec``) map [0, 1] images to the scaled latent and
    back. The network holds the EDM preconditioning; no other adapter is needed. The prompt
    is ignored.
    """

    space = "latent"
    name = "embedded_latent"

    def __init__(self, net: EDMUNet, codec: Codec, config: LatentPriorConfig, dtype: str = "float32"):
        super().__init__()
        self.compute_dtype = compute_dtype(dtype)
        if net.config.in_channels != codec.latent_channels:
            raise ValueError(
                f"latent UNet takes {net.config.in_channels} channels, codec gives {codec.latent_channels}"
            )
        self.net = net.eval().requires_grad_(False)
        self.codec = ScaledCodec(codec.eval().requires_grad_(False), config.latent_shift, config.latent_scale)
        self.config = config
        self.channels = net.config.in_channels
        self.sigma_min = net.config.sigma_min
        self.sigma_max = net.config.sigma_max

    @classmethod
    def from_weights(
        cls,
        weights: str | Path = DEFAULT_WEIGHTS,
        codec_weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
    ) -> "EmbeddedLatentPrior":
        """Load the latent UNet, then the codec its metadata names (or ``codec_weights``)."""
        compute_dtype(dtype)  # a bad value fails before the weights load
        path = shipped_weights(weights)
        if not path.is_file():
            raise missing_weights_error(path, "embedded latent prior")
        config = latent_config_from_metadata(read_metadata(path), path)
        codec_path = shipped_weights(codec_weights if codec_weights is not None else config.codec)
        if not codec_path.is_file():
            raise missing_weights_error(codec_path, "embedded latent prior's codec")
        return cls(load_edm_unet(path, device), load_autoencoder(codec_path, device), config, dtype)

    def _denoise(self, z: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        return run_network(self.net, self.compute_dtype, z, sigma.to(z.dtype))
