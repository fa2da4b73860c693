"""FFDNet (Zhang, Zuo & Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image
Denoising", IEEE TIP 2018) as a non-blind pixel prior D(x, sigma), from the published
MatConvNet files (``FFDNet_color.mat``, ``FFDNet_gray.mat``, cszn/FFDNet ``models/``).

Data flow (the paper's Fig. 1 and the repository's Demo_AWGN_*.m): H and W made even by
repeating the last row / column; 2x pixel-unshuffle (C -> 4C channels); one constant noise-level
map M = sigma appended (4C + 1 channels); conv 3x3 + ReLU, (depth - 2) x (conv + ReLU), conv to
4C; 2x pixel-shuffle; crop. The network outputs the clean image (no residual). Colour: width 96,
12 convs; grey: width 64, 15 convs. Both were trained for sigma in [0, 75/255].
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from operators.priors.base import Prior
from operators.priors.channels import apply_channels
from operators.priors.matconvnet import Layer, convs, layer_types, read_simplenn
from operators.priors.paths import shared_weights

DEFAULT_WEIGHTS = "FFDNet_color.mat"
SIGMA_MAX = 75 / 255  # the top of the training range [0, 75] (8-bit units)
SIGMA_MIN = 1 / 255  # the bottom of solver schedules: one 8-bit level (see FFDNetPrior)


class FFDNet(nn.Module):
    """x: (B, C, H, W) in [0, 1], sigma: (B,) in [0, 1] units -> the denoised (B, C, H, W).
    Convs are ``model.{0,2,...}`` with ReLUs between, as in KAIR's FFDNet."""

    def __init__(self, channels: int = 3, width: int = 96, depth: int = 12):
        super().__init__()
        self.channels = channels
        layers: list[nn.Module] = [nn.Conv2d(4 * channels + 1, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, 4 * channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")  # repeat the last row / column
        z = F.pixel_unshuffle(x, 2)
        m = sigma.to(z.dtype).view(-1, 1, 1, 1).expand(z.shape[0], 1, *z.shape[-2:])
        z = torch.cat([z, m], dim=1).contiguous(memory_format=torch.channels_last)  # NHWC: faster on CPU
        return F.pixel_shuffle(self.model(z), 2)[..., :h, :w].contiguous()


def subp_order(channels: int) -> list[int]:
    """FFDNet's SubP layer (vl_nnSubP.m: a = mod(i-1, 2) row, b = floor((i-1)/2) column) orders
    the 4 sub-images of each channel row offset fastest, (0,0), (1,0), (0,1), (1,1); torch's
    pixel_unshuffle column offset fastest. This index list maps one order to the other (it is
    its own inverse); both put the colour channel outermost."""
    return [4 * c + k for c in range(channels) for k in (0, 2, 1, 3)]


def ffdnet_from_layers(layers: list[Layer], source: str = "file") -> FFDNet:
    """Build an :class:`FFDNet` from MatConvNet SimpleNN layers (see :mod:`matconvnet`)."""
    cs = convs(layers)
    body = ["conv", "relu"] * (len(cs) - 1) + ["conv"]
    subp = [layer.scale for layer in layers if layer.type == "SubP"]
    if [t.type for t in layers] != ["SubP", "concat", *body, "SubP"] or subp != [0.5, 2.0] or len(cs) < 2:
        raise ValueError(f"{source} is not an FFDNet (SubP 0.5, concat, conv/relu stack, SubP 2); "
                         f"layers: {layer_types(layers)}")
    channels, width = cs[-1].weight.shape[0] // 4, cs[0].weight.shape[0]
    if cs[0].weight.shape[1] != 4 * channels + 1 or channels not in (1, 3):
        raise ValueError(f"{source}: first conv takes {cs[0].weight.shape[1]} channels, last gives "
                         f"{cs[-1].weight.shape[0]}; expected 4C + 1 and 4C with C = 1 or 3")
    net = FFDNet(channels, width, len(cs))
    order = subp_order(channels)
    state = {}
    for i, layer in enumerate(cs):
        w, b = torch.from_numpy(layer.weight), torch.from_numpy(layer.bias)
        if i == 0:
            w = torch.cat([w[:, order], w[:, 4 * channels:]], dim=1)  # the noise map stays last
        if i == len(cs) - 1:
            w, b = w[order], b[order]
        state[f"model.{2 * i}.weight"], state[f"model.{2 * i}.bias"] = w, b
    net.load_state_dict(state)
    return net


class FFDNetPrior(Prior):
    """D(x, sigma) = FFDNet(x, clamp(sigma, 0, 75/255)) for x (B, C, H, W) in [0, 1].

    Above its training range the noise map is clamped to 75/255 (the net is not asked to
    extrapolate); solvers never ask above ``sigma_max`` anyway. ``sigma_min`` = 1/255 is only
    where solver schedules stop: the net accepts any sigma >= 0, but on 8-bit data noise below
    one grey level is under the quantisation floor, and Karras schedules (sigma^(1/rho)) need a
    positive end. A grey net denoises RGB channel by channel; a colour net takes grey input as
    R = G = B and averages its output (see :mod:`channels`).
    """

    space = "pixel"
    name = "ffdnet"
    sigma_min = SIGMA_MIN
    sigma_max = SIGMA_MAX

    def __init__(self, net: FFDNet):
        super().__init__()
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.channels = net.channels

    @classmethod
    def from_weights(cls, weights: str | Path | None = None, device: str | torch.device = "cpu") -> "FFDNetPrior":
        """Load a MatConvNet v7.3 FFDNet file (default ../shared/data/weights/FFDNet_color.mat)."""
        path = Path(weights) if weights is not None else shared_weights(DEFAULT_WEIGHTS)
        if not path.is_file():
            raise FileNotFoundError(f"FFDNet weights not found: {path}; pass weights=<path to FFDNet_color.mat "
                                    f"or FFDNet_gray.mat> (cszn/FFDNet models/, MatConvNet v7.3)")
        return cls(ffdnet_from_layers(read_simplenn(path), str(path)).to(device))

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        return apply_channels(self.net, x, sigma.clamp(0, self.sigma_max), self.channels)
