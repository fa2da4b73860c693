"""Reflect-pad an image to a multiple of m and crop back: networks with strided levels."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """x: (B, C, H, W) -> (x padded on the bottom/right to multiples of m, (H, W)).

    Reflect padding where the image is large enough, replicate otherwise (reflect needs
    pad < size).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """x: (B, C, H', W') -> (B, C, H, W), the top-left H x W."""
    return x[..., : size[0], : size[1]]
