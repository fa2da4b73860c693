"""Baseline `wiener`: Wiener-Hunt deconvolution (scikit-image) for blur, the local adaptive
Wiener filter (scipy, Lim 1990 sec. 9.2) for denoising; per channel."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from operators.baselines._util import blur_kernel, noise_sigma, per_image
from operators.degradations.base import Degradation

APPLIES = ("denoise", "blur")


@dataclass(frozen=True)
class WienerConfig:
    """``balance``: skimage's regularization weight (Laplacian regularizer); None = auto,
    ``balance_per_var`` * sigma_n^2 (a noise-to-signal ratio, tuned on a BSDS400 training
    image, not on the evaluation sets). ``window``: the denoising filter's window size."""

    balance: float | None = None
    balance_per_var: float = 100.0
    window: int = 5

    def __post_init__(self) -> None:
        if (self.balance is not None and self.balance <= 0) or self.balance_per_var <= 0 or self.window < 1:
            raise ValueError("wiener: need balance > 0 (or null), balance_per_var > 0 and window >= 1")


def baseline_wiener(y: torch.Tensor, degradation: Degradation, *, config: WienerConfig | None = None) -> torch.Tensor:
    """y (B, C, H, W) -> x (B, C, H, W)."""
    from scipy.signal import wiener as local_wiener
    from skimage.restoration import wiener as wiener_hunt

    cfg = config or WienerConfig()
    sigma = noise_sigma(degradation)
    if degradation.name == "denoise":
        def run(img: np.ndarray) -> np.ndarray:
            return np.stack([local_wiener(img[..., c], cfg.window, sigma**2) for c in range(img.shape[2])], -1)
    elif degradation.name == "blur":
        psf = blur_kernel(degradation)
        balance = cfg.balance if cfg.balance is not None else cfg.balance_per_var * sigma**2

        def run(img: np.ndarray) -> np.ndarray:
            return np.stack([wiener_hunt(img[..., c], psf, balance, clip=False) for c in range(img.shape[2])], -1)
    else:
        raise ValueError(f"wiener applies to {', '.join(APPLIES)}, not {degradation.name!r}")
    return per_image(y, run)
