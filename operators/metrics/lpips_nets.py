"""The ImageNet feature extractors LPIPS taps (AlexNet, VGG16, SqueezeNet 1.1), in plain torch.

Layer indices follow torchvision's ``features`` modules, so a torchvision state dict
(``features.N.weight`` ...) loads as it is; only the convolutional part is built.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Net = Literal["alex", "vgg", "squeeze"]

# indices (in ``features``) of the ReLU outputs LPIPS compares, and their channel counts
TAPS: dict[str, tuple[int, ...]] = {
    "alex": (1, 4, 7, 9, 11),
    "vgg": (3, 8, 15, 22, 29),
    "squeeze": (1, 4, 7, 9, 10, 11, 12),
}
CHANNELS: dict[str, tuple[int, ...]] = {
    "alex": (64, 192, 384, 256, 256),
    "vgg": (64, 128, 256, 512, 512),
    "squeeze": (64, 128, 256, 384, 384, 512, 512),
}


def alexnet_features() -> nn.Sequential:
    """AlexNet conv trunk (Krizhevsky et al. 2012, torchvision's one-GPU variant)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )


def vgg16_features() -> nn.Sequential:
    """VGG16 conv trunk (Simonyan & Zisserman 2015, configuration D), no batch norm."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers)


class Fire(nn.Module):
    """SqueezeNet fire module (Iandola et al. 2016): 1x1 squeeze, then 1x1 and 3x3 expands."""

    def __init__(self, c_in: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], dim=1)


def squeezenet1_1_features() -> nn.Sequential:
    """SqueezeNet 1.1 trunk."""
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(),
        pool(), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
        pool(), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
        pool(), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
    )


BUILDERS = {"alex": alexnet_features, "vgg": vgg16_features, "squeeze": squeezenet1_1_features}


class Backbone(nn.Module):
    """A feature trunk returning its tapped activations. x: (B, 3, H, W) -> list of (B, C_k, H_k, W_k)."""

    def __init__(self, net: Net):
        super().__init__()
        if net not in BUILDERS:
            raise ValueError(f"unknown LPIPS backbone {net!r}; valid choices: {', '.join(BUILDERS)}")
        self.net = net
        self.features = BUILDERS[net]()
        self.taps = TAPS[net]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
            if i == self.taps[-1]:
                break
        return out
