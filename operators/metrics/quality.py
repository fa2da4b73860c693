"""PSNR and SSIM of one HWC image against its reference, for table rows, in bounded memory.

Both are computed over bands of rows, so a 64 MP image never has a whole-image float64 copy
(the whole-image SSIM needs about ten of them: ~1.5 KB per pixel of work memory at 64 MP).
Each band of SSIM carries the window radius as a halo on both sides, so the per-band "valid"
maps tile the whole-image map exactly; the means are sums over bands divided by the count.
The results equal scikit-image's ``peak_signal_noise_ratio`` / ``structural_similarity``
(gaussian_weights, sigma 1.5, population covariance, data_range 1) to float64 rounding.
Work memory: ``BAND_ROWS`` x W x C x ~100 bytes, whatever H is.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from operators.metrics.ssim import gaussian_window_1d, ssim_maps

BAND_ROWS = 256


def hwc_to_batch(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) -> (1, 3, H, W) float32; one-channel images (colorize measurements) are
    repeated (a view, no copy, when the input is already float32)."""
    arr = np.asarray(img, dtype=np.float32)
    with warnings.catch_warnings():  # a read-only row view: only read here (every op makes new tensors)
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        t = torch.from_numpy(arr).permute(2, 0, 1)[None]
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


def crop_reference(ref: np.ndarray, size: tuple[int, int], scale: int = 1) -> np.ndarray:
    """ref (H, W, C) cropped top-left to ``size`` = (h, w) when each side is larger by less
    than ``scale`` (the SR mod-crop convention); any other mismatch raises ValueError."""
    (h, w), (rh, rw) = size, ref.shape[:2]
    if not (0 <= rh - h < max(1, scale) and 0 <= rw - w < max(1, scale)):
        raise ValueError(f"reference is {rh}x{rw} (HxW) but the restored image is {h}x{w}; "
                         f"sizes must match up to a crop of less than the scale ({scale})")
    return ref[:h, :w]


def banded_sums(x: torch.Tensor, ref: torch.Tensor, band: int = BAND_ROWS) -> tuple[float, int, float, int]:
    """(sum of squared errors, its count, sum of the SSIM map, its count) of x, ref
    (1, C, H, W) float32 (views are fine), x clamped to [0, 1], band by band."""
    H = x.shape[-2]
    r = gaussian_window_1d().numel() // 2
    if min(x.shape[-2:]) < 2 * r + 1:
        raise ValueError(f"image {tuple(x.shape[-2:])} is smaller than the {2 * r + 1}x{2 * r + 1} SSIM window")
    sse = ssim_sum = 0.0
    ssim_n = 0
    for top in range(0, H, band):
        bottom = min(top + band, H)
        a, b = x[..., top:bottom, :].clamp(0, 1).double(), ref[..., top:bottom, :].double()
        sse += float((a - b).square().sum())
        c0, c1 = max(top, r), min(bottom, H - r)  # the SSIM map's centre rows in this band
        if c1 > c0:  # its input rows are c0 - r .. c1 + r: the band and a halo of r each side
            s_map, _ = ssim_maps(x[..., c0 - r:c1 + r, :].clamp(0, 1), ref[..., c0 - r:c1 + r, :])
            ssim_sum += float(s_map.sum())
            ssim_n += s_map.numel()
    return sse, x[0].numel(), ssim_sum, ssim_n


def quality(x: np.ndarray, ref: np.ndarray, resize: bool = True) -> tuple[float, float]:
    """(PSNR, SSIM) of x (H, W, C) against ref, x clamped to [0, 1]. When sizes differ, x is
    resized (bicubic) to ref's size if ``resize`` (an LQ input of SR), else ValueError."""
    xt, rt = hwc_to_batch(x), hwc_to_batch(ref)
    if xt.shape[-2:] != rt.shape[-2:]:
        if not resize:
            raise ValueError(f"image is {tuple(xt.shape[-2:])} but its reference is {tuple(rt.shape[-2:])} (HxW)")
        xt = F.interpolate(xt.contiguous(), size=rt.shape[-2:], mode="bicubic", align_corners=False)
    sse, n, ssim_sum, ssim_n = banded_sums(xt, rt)
    psnr = 10 * math.log10(1 / (sse / n)) if sse > 0 else math.inf
    return float(np.float32(psnr)), float(np.float32(ssim_sum / ssim_n))
