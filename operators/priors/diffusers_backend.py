"""Any diffusers DDPM-family UNet as an EDM denoiser D(x, sigma), through its alphas_cumprod.

ALGORITHMS.md, notation: the model sees x_t = sqrt(abar_t) x_sigma = x_sigma / sqrt(1 + sigma^2)
at the (fractional) step t whose sigma_t is sigma, and
- epsilon prediction: D = x - sigma eps_hat(x_t, t);
- v prediction (Salimans & Ho 2022): x0 = sqrt(abar) x_t - sqrt(1 - abar) v
  = x / (1 + sigma^2) - sigma / sqrt(1 + sigma^2) v_hat(x_t, t);
- sample prediction: D = the output.
Pixel models are trained on [-1, 1]: x' = 2x - 1, sigma' = 2 sigma. With a VAE the prior is
latent: its codec maps [0, 1] images to the scaled latent. Loading: ``diffusers_loader``.
"""
from __future__ import annotations

from typing import Literal

import torch

from operators.priors.base import Prior
from operators.priors.diffusers_codec import DiffusersCodec
from operators.priors.diffusers_sigmas import DiscreteSigmas
from operators.priors.diffusers_text import PromptEncoder

PredictionType = Literal["epsilon", "v_prediction", "sample"]
UNSUPPORTED_ADDED_COND = ("text_time", "text_image", "image", "image_hint")


class DiffusersPrior(Prior):
    """D(x, sigma) for x (B, C, H, W): pixels in [0, 1], or latents of ``codec``."""

    name = "diffusers"

    def __init__(
        self,
        unet: torch.nn.Module,
        alphas_cumprod: torch.Tensor,
        prediction_type: PredictionType = "epsilon",
        codec: DiffusersCodec | None = None,
        prompt_encoder: PromptEncoder | None = None,
        prompt: str = "",
    ):
        super().__init__()
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unsupported prediction_type {prediction_type!r}; valid: epsilon, v_prediction, sample")
        self.unet = unet.eval().requires_grad_(False)
        self.conditional = type(unet).__name__ == "UNet2DConditionModel"
        if self.conditional and getattr(unet.config, "addition_embed_type", None) in UNSUPPORTED_ADDED_COND:
            raise ValueError(
                f"UNet with addition_embed_type={unet.config.addition_embed_type!r} (e.g. SDXL) needs added "
                "conditioning (pooled text embeddings, time ids) that this backend does not provide"
            )
        if self.conditional and prompt_encoder is None:
            prompt_encoder = PromptEncoder(unet.config.cross_attention_dim)
        self.prompt_encoder = prompt_encoder
        self.default_prompt = prompt
        self.model_id = ""  # set by the loader: the path or hub id
        self.schedule = DiscreteSigmas(alphas_cumprod)
        self.prediction_type = prediction_type
        self.channels = int(unet.config.in_channels)
        self.space = "latent" if codec is not None else "pixel"
        self.codec = codec
        if codec is not None and codec.latent_channels != self.channels:
            raise ValueError(f"the UNet takes {self.channels} channels but the VAE latent has {codec.latent_channels}")
        scale = 1.0 if codec is not None else 0.5  # pixel sigmas are half the model's [-1, 1] sigmas
        self.sigma_min = self.schedule.sigma_min * scale
        self.sigma_max = self.schedule.sigma_max * scale

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def model_output(self, x_t: torch.Tensor, t: torch.Tensor, prompt: str | None) -> torch.Tensor:
        """The raw network output at x_t (B, C, H, W) and steps t (B,), float32, first C channels."""
        kwargs = {}
        if self.conditional:
            p = self.default_prompt if prompt is None else prompt
            kwargs["encoder_hidden_states"] = self.prompt_encoder(p, x_t.shape[0], x_t.device, self.dtype)
        out = self.unet(x_t.to(self.dtype), t.float(), **kwargs).sample.float()  # t stays float32 (fp16 rounds t)
        return out[:, : self.channels]  # learned-variance models output 2C channels

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        if self.space == "pixel":
            x, sigma = 2 * x - 1, 2 * sigma
        s = sigma.to(x.dtype).view(-1, 1, 1, 1)
        t = self.schedule.sigma_to_t(sigma)
        out = self.model_output(x / (1 + s**2).sqrt(), t.float(), prompt)
        if self.prediction_type == "epsilon":
            d = x - s * out
        elif self.prediction_type == "v_prediction":
            d = x / (1 + s**2) - s / (1 + s**2).sqrt() * out
        else:
            d = out
        return (d + 1) / 2 if self.space == "pixel" else d
