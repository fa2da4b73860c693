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


def quality(x: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) of x (H, W, C) against ref, x resized (bicubic) to ref's size when they
    differ (an LQ input of SR) and clamped to [0, 1]."""
    xt, rt = hwc_to_batch(x), hwc_to_batch(ref)
    if xt.shape[-2:] != rt.shape[-2:]:
        xt = F.interpolate(xt, size=rt.shape[-2:], mode="bicubic", align_corners=False)
    xt = xt.clamp(0, 1)
    return float(psnr(xt, rt)[0]), float(ssim(xt, rt)[0])
