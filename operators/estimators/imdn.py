"""IMDN (Hui, Gao, Yang & Wang, "Lightweight Image Super-Resolution with Information
Multi-distillation Network", ACM MM 2019): a direct x4 estimator x = f(y) for MATLAB-bicubic
downsampling, written here from the paper and loaded from the published checkpoint
(``IMDN_x4.pth``, github.com/Zheng222/IMDN; read from the path a config gives, never copied).

Network: 3x3 conv to 64 features, six information multi-distillation blocks (IMDB: four 3x3
convs, each keeping a quarter of its channels as "distilled" and passing the rest on; the four
distilled parts concatenated, contrast-aware channel attention (CCA: per-channel std + mean,
squeeze 64 -> 4 -> 64), 1x1 fusion, residual), 1x1 fusion of the six block outputs, a 3x3 conv,
the long skip, and a pixel-shuffle x4 upsampler. LeakyReLU(0.05) throughout.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WIDTH = 64
DISTILLED = 16  # a quarter of the width is kept at each distillation step
BLOCKS = 6
SLOPE = 0.05


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class ContrastAttention(nn.Module):
    """CCA: a channel gate from the per-channel contrast (std + mean over space)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(_conv(channels, channels // reduction, 1), nn.ReLU(inplace=True),
                                     _conv(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.conv_du(std + mean)


class DistillationBlock(nn.Module):
    """IMDB: three split steps (16 kept, 48 refined on), a fourth conv to 16, CCA, 1x1, residual."""

    def __init__(self, width: int = WIDTH, kept: int = DISTILLED):
        super().__init__()
        rest = width - kept
        self.kept = kept
        self.c1, self.c2, self.c3 = _conv(width, width, 3), _conv(rest, width, 3), _conv(rest, width, 3)
        self.c4 = _conv(rest, kept, 3)
        self.cca = ContrastAttention(kept * 4)
        self.c5 = _conv(kept * 4, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = []
        h = x
        for conv in (self.c1, self.c2, self.c3):
            d, h = torch.split(F.leaky_relu(conv(h), SLOPE), (self.kept, conv.out_channels - self.kept), dim=1)
            kept.append(d)
        kept.append(self.c4(h))
        return self.c5(self.cca(torch.cat(kept, dim=1))) + x


class IMDN(nn.Module):
    """y: (B, 3, h, w) in [0, 1] -> x: (B, 3, 4h, 4w). Parameter names as in the published file."""

    scale = 4

    def __init__(self, width: int = WIDTH, blocks: int = BLOCKS, scale: int = 4):
        super().__init__()
        self.scale = scale
        self.fea_conv = _conv(3, width, 3)
        for i in range(1, blocks + 1):
            self.add_module(f"IMDB{i}", DistillationBlock(width))
        self.blocks = blocks
        self.c = nn.Sequential(_conv(width * blocks, width, 1), nn.LeakyReLU(SLOPE))
        self.LR_conv = _conv(width, width, 3)
        self.upsampler = nn.Sequential(_conv(width, 3 * scale * scale, 3), nn.PixelShuffle(scale))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(y)
        outs, h = [], fea
        for i in range(1, self.blocks + 1):
            h = getattr(self, f"IMDB{i}")(h)
            outs.append(h)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)


def load_imdn(path: str | Path) -> IMDN:
    """The published checkpoint (a flat state dict with a ``module.`` prefix), read with
    ``torch.load(weights_only=True)``; a file of another network is refused naming its keys."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"IMDN weights not found: {p} (the published IMDN_x4.pth; see "
                                "../shared/data/MANIFEST.md)")
    state = torch.load(p, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if "upsampler.0.weight" not in state:
        raise ValueError(f"{p} is not an IMDN checkpoint (no upsampler.0.weight; keys: {sorted(state)[:5]}...)")
    scale = int(round((state["upsampler.0.weight"].shape[0] / 3) ** 0.5))
    blocks = sum(1 for k in state if k.endswith(".c5.weight"))
    net = IMDN(width=state["fea_conv.weight"].shape[0], blocks=blocks, scale=scale)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)
