"""Baseline `bm3d`: CBM3D for colour denoising and BM3D deblurring (Dabov et al. 2007 and
2008; Makinen et al. 2020), through the `bm3d` package, with the operator's noise sigma."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from operators.baselines._util import blur_kernel, noise_sigma, odd_kernel, per_image
from operators.degradations.base import Degradation

APPLIES = ("denoise", "blur")


@dataclass(frozen=True)
class BM3DConfig:
    """``profile``: the package's settings name (``np`` its default, ``refilter``, ``high``,
    ...); ``sigma_scale`` multiplies the operator's noise sigma (1 = the true sigma)."""

    profile: str = "np"
    sigma_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.sigma_scale <= 0:
            raise ValueError(f"bm3d: sigma_scale must be > 0, got {self.sigma_scale}")


def _numpy_compat() -> None:
    """bm4d 4.2.x (bm3d's backend) calls ``np.trapz`` for coloured-noise PSDs (the deblurring
    path); NumPy 2.4 removed that alias of ``np.trapezoid``. Restore it if missing."""
    if "trapz" not in np.__dict__ and hasattr(np, "trapezoid"):
        np.trapz = np.trapezoid


def baseline_bm3d(y: torch.Tensor, degradation: Degradation, *, config: BM3DConfig | None = None) -> torch.Tensor:
    """y (B, C, H, W) -> x (B, C, H, W). ``denoise``: ``bm3d.bm3d_rgb`` (CBM3D, YCbCr) for
    3 channels, ``bm3d.bm3d`` for one; ``blur``: ``bm3d.bm3d_deblurring`` with the operator's
    kernel, per channel (regularized inverse, then BM3D hard-thresholding and a regularized
    Wiener stage; circular convolution, as the blur operator is)."""
    import bm3d

    cfg = config or BM3DConfig()
    sigma = noise_sigma(degradation) * cfg.sigma_scale
    if degradation.name == "denoise":
        def run(img: np.ndarray) -> np.ndarray:
            if img.shape[2] == 3:
                return bm3d.bm3d_rgb(img, sigma, profile=cfg.profile)
            return np.atleast_3d(bm3d.bm3d(img[..., 0], sigma, profile=cfg.profile))
    elif degradation.name == "blur":
        psf = odd_kernel(blur_kernel(degradation))
        _numpy_compat()

        def run(img: np.ndarray) -> np.ndarray:
            # one (H, W, 1) channel at a time: the package's 3-channel path passes a 3-channel
            # pilot to each channel's Wiener stage, and a 2-D input broadcasts its PSD to 3-D
            channels = [bm3d.bm3d_deblurring(img[..., c:c + 1], sigma, psf, profile=cfg.profile)
                        for c in range(img.shape[2])]
            return np.stack([ch.reshape(img.shape[:2]) for ch in channels], -1)
    else:
        raise ValueError(f"bm3d applies to {', '.join(APPLIES)}, not {degradation.name!r}")
    return per_image(y, run)
