"""Run a denoiser trained on 1 or 3 channels on images of either kind.

A grey network given an RGB image denoises each channel as its own grey image (as published
grey denoisers are applied channel-wise to colour in PnP codes). A colour network given a grey
image sees it replicated to R = G = B and its three outputs are averaged back to one channel:
the colour net was trained on colour noise, and on a grey input with identical noise in each
channel its outputs agree closely, so the mean is the natural single-channel answer.
"""
from __future__ import annotations

from typing import Callable

import torch

Net = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def apply_channels(net: Net, x: torch.Tensor, sigma: torch.Tensor, channels: int) -> torch.Tensor:
    """net(x, sigma) with x: (B, C, H, W) adapted to a net of ``channels`` (1 or 3) channels.

    ``net`` takes (N, channels, H, W) and sigma (N,); returns the output shaped like ``x``.
    """
    b, c, h, w = x.shape
    if c == channels:
        return net(x, sigma)
    if channels == 1:
        out = net(x.reshape(b * c, 1, h, w), sigma.repeat_interleave(c))
        return out.reshape(b, c, h, w)
    if channels == 3 and c == 1:
        return net(x.expand(b, 3, h, w), sigma).mean(dim=1, keepdim=True)
    raise ValueError(f"a {channels}-channel denoiser cannot take a {c}-channel image; give 1 or {channels} channels")
