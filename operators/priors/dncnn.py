"""DnCNN (Zhang et al., "Beyond a Gaussian Denoiser", IEEE TIP 2017) as a fixed-sigma pixel prior.

The published grey DnCNN-S at sigma = 25/255 (KAIR's ``dncnn_25.pth``): 17 3x3 convs
(1 -> 64, 15 x 64 -> 64 with ReLU, 64 -> 1), no BatchNorm left (folded), residual:
D(x) = x - net(x). For plug-and-play use only: D ignores the sigma it is asked for (one
network, one noise level); a sigma far from 25/255 gets one warning per prior. RGB images are
denoised channel by channel.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from operators.priors.base import Prior
from operators.priors.paths import shared_weights

DEFAULT_WEIGHTS = "dncnn_25.pth"
TRAINED_SIGMA = 25 / 255


class DnCNN(nn.Module):
    """x: (B, 1, H, W) in [0, 1] -> x - residual(x). Keys ``model.{0,2,...,32}`` as in KAIR."""

    def __init__(self, depth: int = 17, width: int = 64, channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)


class DnCNNPrior(Prior):
    """D(x, sigma) = DnCNN(x) for x (B, C, H, W) in [0, 1]; sigma only checked against 25/255."""

    space = "pixel"
    name = "dncnn"

    def __init__(self, net: DnCNN, trained_sigma: float = TRAINED_SIGMA, rtol: float = 0.25):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.channels = 1
        self.trained_sigma = float(trained_sigma)
        self.sigma_min = self.sigma_max = self.trained_sigma
        self.rtol = float(rtol)
        self._warned = False

    @classmethod
    def from_weights(cls, weights: str | Path | None = None, device: str | torch.device = "cpu") -> "DnCNNPrior":
        """Load ``weights`` (default ../shared/data/weights/dncnn_25.pth) with weights_only=True."""
        path = Path(weights) if weights is not None else shared_weights(DEFAULT_WEIGHTS)
        if not path.is_file():
            raise FileNotFoundError(
                f"DnCNN weights not found: {path}; pass weights=<path to dncnn_25.pth> "
                "(KAIR model zoo, grey, sigma 25)"
            )
        net = DnCNN()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(net.to(device))

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        off = (sigma - self.trained_sigma).abs() > self.rtol * self.trained_sigma
        if not self._warned and bool(off.any()):
            self._warned = True
            warnings.warn(
                f"DnCNN is trained for sigma = {self.trained_sigma:.4f} only and ignores the requested "
                f"sigma ({sigma.max().item():.4f}); its output is a fixed-level denoiser, not D(x, sigma)",
                stacklevel=3,
            )
        b, c, h, w = x.shape
        return self.net(x.reshape(b * c, 1, h, w)).reshape(b, c, h, w)
