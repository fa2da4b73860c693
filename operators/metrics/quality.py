"""PSNR and SSIM of one HWC image against its reference, for table rows."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from operators.metrics.psnr import psnr
from operators.metrics.ssim import ssim


def hwc_to_batch(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) -> (1, 3, H, W); one-channel images (colorize measurements) are repeated."""
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


def crop_reference(ref: np.ndarray, size: tuple[int, int], scale: int = 1) -> np.ndarray:
    """ref (H, W, C) cropped top-left to ``size`` = (h, w) when each side is larger by less
    than ``scale`` (the SR mod-crop convention); any other mismatch raises ValueError."""
    (h, w), (rh, rw) = size, ref.shape[:2]
    if not (0 <= rh - h < max(1, scale) and 0 <= rw - w < max(1, scale)):
        raise ValueError(f"reference is {rh}x{rw} (HxW) but the restored image is {h}x{w}; "
                         f"sizes must match up to a crop of less than the scale ({scale})")
    return ref[:h, :w]


def quality(x: np.ndarray, ref: np.ndarray, resize: bool = True) -> tuple[float, float]:
    """(PSNR, SSIM) of x (H, W, C) against ref, x clamped to [0, 1]. When sizes differ, x is
    resized (bicubic) to ref's size if ``resize`` (an LQ input of SR), else ValueError."""
    xt, rt = hwc_to_batch(x), hwc_to_batch(ref)
    if xt.shape[-2:] != rt.shape[-2:]:
        if not resize:
            raise ValueError(f"image is {tuple(xt.shape[-2:])} but its reference is {tuple(rt.shape[-2:])} (HxW)")
        xt = F.interpolate(xt, size=rt.shape[-2:], mode="bicubic", align_corners=False)
    xt = xt.clamp(0, 1)
    return float(psnr(xt, rt)[0]), float(ssim(xt, rt)[0])
