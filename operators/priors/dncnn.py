"""DnCNN (Zhang et al., "Beyond a Gaussian Denoiser", IEEE TIP 2017) as a pixel prior that
ignores sigma: D(x) = x - net(x), the net predicting the noise (BatchNorm folded into the convs).

Two published files load (``weights`` picks one; the suffix decides the reader):

- ``dncnn_25.pth`` (KAIR model zoo, the default): grey DnCNN-S for sigma = 25/255 only, 17 convs
  (1 -> 64, 15 x 64 -> 64, 64 -> 1). ``sigma_min = sigma_max = 25/255``.
- ``GD_Color_Blind.mat`` (cszn/DnCNN ``model/``, MatConvNet v7.3): colour CDnCNN-B, blind for
  sigma in [0, 55/255], 20 convs (3 -> 64, 18 x 64 -> 64, 64 -> 3). Any ``.mat`` DnCNN is taken
  to be a blind DnCNN-B (the published ``GD_*_Blind.mat`` files); ``sigma_min`` = 1/255 is
  where solver schedules stop (see :class:`operators.priors.ffdnet.FFDNetPrior`).

A sigma outside the range the net was trained for gets one warning per prior. A grey net
denoises RGB channel by channel; a colour net takes grey input as R = G = B and averages its
output (see :mod:`operators.priors.channels`).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from operators.priors.base import Prior
from operators.priors.channels import apply_channels
from operators.priors.matconvnet import Layer, convs, layer_types, read_simplenn
from operators.priors.paths import shared_weights

DEFAULT_WEIGHTS = "dncnn_25.pth"
TRAINED_SIGMA = 25 / 255
BLIND_RANGE = (0.0, 55 / 255)  # DnCNN-B's training range (the paper's Sec. IV-A)
BLIND_SIGMA_MIN = 1 / 255  # where solver schedules stop for a blind net: one 8-bit level


class DnCNN(nn.Module):
    """x: (B, C, H, W) in [0, 1] -> x - residual(x). Keys ``model.{0,2,...}`` as in KAIR."""

    def __init__(self, depth: int = 17, width: int = 64, channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.model = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # NHWC: ~1.5x faster convs on CPU
        return (x - self.model(x)).contiguous()


def dncnn_from_layers(layers: list[Layer], source: str = "file") -> DnCNN:
    """Build a :class:`DnCNN` from MatConvNet SimpleNN layers (conv, relu, ..., conv)."""
    cs = convs(layers)
    if [t.type for t in layers] != ["conv", "relu"] * (len(cs) - 1) + ["conv"] or len(cs) < 2:
        raise ValueError(f"{source} is not a DnCNN (a conv/relu stack); layers: {layer_types(layers)}")
    channels, width = cs[0].weight.shape[1], cs[0].weight.shape[0]
    net = DnCNN(depth=len(cs), width=width, channels=channels)
    state = {}
    for i, layer in enumerate(cs):
        state[f"model.{2 * i}.weight"] = torch.from_numpy(layer.weight)
        state[f"model.{2 * i}.bias"] = torch.from_numpy(layer.bias)
    net.load_state_dict(state)
    return net


class DnCNNPrior(Prior):
    """D(x, sigma) = DnCNN(x) for x (B, C, H, W) in [0, 1]; sigma only checked against the
    ``trained`` range (lo, hi): the fixed 25/255 by default, (0, 55/255) for DnCNN-B."""

    space = "pixel"
    name = "dncnn"

    def __init__(self, net: DnCNN, trained: tuple[float, float] = (TRAINED_SIGMA, TRAINED_SIGMA),
                 rtol: float = 0.25, sigma_min: float | None = None):
        super().__init__()
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.channels = net.channels
        self.trained = (float(trained[0]), float(trained[1]))
        self.sigma_min = self.trained[0] if sigma_min is None else float(sigma_min)
        self.sigma_max = self.trained[1]
        self.rtol = float(rtol)
        self._warned = False

    @classmethod
    def from_weights(cls, weights: str | Path | None = None, device: str | torch.device = "cpu") -> "DnCNNPrior":
        """Load ``weights`` (default ../shared/data/weights/dncnn_25.pth): a ``.mat`` file is read as a
        MatConvNet v7.3 blind DnCNN-B (h5py), anything else as a KAIR state dict (weights_only=True)."""
        path = Path(weights) if weights is not None else shared_weights(DEFAULT_WEIGHTS)
        if not path.is_file():
            raise FileNotFoundError(
                f"DnCNN weights not found: {path}; pass weights=<path to dncnn_25.pth> "
                "(KAIR model zoo, grey, sigma 25) or <path to GD_Color_Blind.mat> (cszn/DnCNN, colour, blind)"
            )
        if path.suffix.lower() == ".mat":
            net = dncnn_from_layers(read_simplenn(path), str(path))
            return cls(net.to(device), trained=BLIND_RANGE, sigma_min=BLIND_SIGMA_MIN)
        net = DnCNN()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(net.to(device))

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        lo, hi = self.trained
        off = (sigma < lo - self.rtol * hi) | (sigma > hi * (1 + self.rtol))
        if not self._warned and bool(off.any()):
            self._warned = True
            level, kind = (f"sigma = {hi:.4f} only", "fixed-level") if lo == hi else \
                (f"sigma in [{lo:.4f}, {hi:.4f}]", "blind")
            warnings.warn(
                f"DnCNN is trained for {level} and ignores the requested sigma "
                f"({sigma.max().item():.4f}); its output is a {kind} denoiser's, not D(x, sigma)",
                stacklevel=3,
            )
        return apply_channels(lambda z, _s: self.net(z), x, sigma, self.channels)
