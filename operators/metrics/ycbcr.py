"""ITU-R BT.601 luma as MATLAB's ``rgb2ycbcr`` computes it (the SR-literature Y channel)."""
from __future__ import annotations

import torch

# MATLAB rgb2ycbcr, RGB in [0, 1] -> Y in [16, 235] (8-bit scale): Y = 16 + 65.481 R + 128.553 G + 24.966 B
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma in [16, 235] / 255. x: (B, 3, H, W) in [0, 1] -> (B, 1, H, W).

    A one-channel input is returned unchanged (it already is luma).
    """
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"rgb_to_y expects 1 or 3 channels, got {x.shape[1]}")
    w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x * w).sum(dim=1, keepdim=True) + _Y_OFFSET) / 255.0
