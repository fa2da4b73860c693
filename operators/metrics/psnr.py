"""Peak signal-to-noise ratio, batched: on RGB (as scikit-image) or on the BT.601 Y channel."""
from __future__ import annotations

import torch

from operators.metrics.ycbcr import rgb_to_y


def shave_border(x: torch.Tensor, border: int) -> torch.Tensor:
    """Remove ``border`` pixels from each spatial side. x: (B, C, H, W)."""
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return x
    if 2 * border >= min(x.shape[-2:]):
        raise ValueError(f"crop_border={border} leaves nothing of a {tuple(x.shape[-2:])} image")
    return x[..., border:-border, border:-border]


def _check_pair(x: torch.Tensor, ref: torch.Tensor) -> None:
    if x.shape != ref.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(ref.shape)}")


def psnr(x: torch.Tensor, ref: torch.Tensor, crop_border: int = 0, data_range: float = 1.0) -> torch.Tensor:
    """PSNR = 10 log10(data_range^2 / MSE) per image, MSE over C, H, W in float64.

    Equals ``skimage.metrics.peak_signal_noise_ratio(ref, x, data_range=1)``.
    x, ref: (B, C, H, W) -> (B,). Identical images give +inf.
    """
    _check_pair(x, ref)
    x, ref = shave_border(x, crop_border), shave_border(ref, crop_border)
    mse = (x.double() - ref.double()).square().flatten(1).mean(dim=1)
    return (10.0 * torch.log10(data_range**2 / mse)).float()


def psnr_y(x: torch.Tensor, ref: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    """PSNR on the Y channel (MATLAB rgb2ycbcr, [16, 235] / 255), as the SR literature reports.

    x, ref: (B, 3, H, W) or (B, 1, H, W) -> (B,).
    """
    _check_pair(x, ref)
    return psnr(rgb_to_y(x.double()), rgb_to_y(ref.double()), crop_border=crop_border)

