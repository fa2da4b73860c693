"""The embedded pixel prior: restoray's own EDM UNet, shipped as weights/<name>.safetensors."""
from __future__ import annotations

from pathlib import Path

import torch

from operators.priors.base import Prior
from operators.priors.edm_unet import EDMUNet, load_edm_unet
from operators.priors.paths import missing_weights_error, shipped_weights
from operators.priors.precision import compute_dtype, run_network

DEFAULT_WEIGHTS = "embedded_pixel"
DEFAULT_GREY_WEIGHTS = "embedded_pixel_grey"


class EmbeddedPixelPrior(Prior):
    """D(x, sigma) for x (B, C, H, W) in [0, 1], sigma in [0, 1] units.

    The adapter only rescales: the network works in [-1, 1], so x' = 2x - 1, sigma' = 2 sigma,
    and D = (D'(x', sigma') + 1) / 2. The network holds the EDM preconditioning. A grey
    network (1 channel) denoises RGB input channel by channel. Not text-conditioned: the
    prompt is ignored. Parameters are frozen (autograd still flows to x, for DPS). ``dtype``:
    the network's compute precision (operators.priors.precision).
    """

    space = "pixel"
    name = "embedded"

    def __init__(self, net: EDMUNet, dtype: str = "float32"):
        super().__init__()
        self.compute_dtype = compute_dtype(dtype)
        if net.config.in_channels != net.config.out_channels:
            raise ValueError("a pixel prior network must map C channels to C channels")
        self.net = net.eval().requires_grad_(False)
        self.channels = net.config.in_channels
        self.sigma_min = net.config.sigma_min / 2
        self.sigma_max = net.config.sigma_max / 2

    @classmethod
    def from_weights(
        cls, weights: str | Path = DEFAULT_WEIGHTS, device: str | torch.device = "cpu", dtype: str = "float32"
    ) -> "EmbeddedPixelPrior":
        """Load weights/<weights>.safetensors (a bare name) or a path to a .safetensors file."""
        compute_dtype(dtype)  # a bad value fails before the weights load
        path = shipped_weights(weights)
        if not path.is_file():
            raise missing_weights_error(path, "embedded pixel prior")
        return cls(load_edm_unet(path, device), dtype)

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        b, c, h, w = x.shape
        if c != self.channels:
            if self.channels != 1:
                raise ValueError(
                    f"this prior is {self.channels}-channel, got a {c}-channel image; "
                    f"use the grey weights ({DEFAULT_GREY_WEIGHTS!r}) for grey images"
                )
            x, sigma = x.reshape(b * c, 1, h, w), sigma.repeat_interleave(c)
        d = run_network(self.net, self.compute_dtype, 2 * x - 1, 2 * sigma.to(x.dtype))
        return ((d + 1) / 2).reshape(b, c, h, w)
