"""Helpers shared by the classical baselines: tensor <-> numpy images, noise level, kernels."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from operators.degradations.base import PROX_SIGMA_FLOOR, Degradation


def per_image(y: torch.Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply ``fn`` to each image of y: (B, C, h, w) as float64 (h, w, C) arrays; stack the
    (H, W, C) results back into a float32 (B, C, H, W) tensor on y's device, clamped to [0, 1]."""
    outs = []
    for img in y.detach().cpu().double().permute(0, 2, 3, 1).numpy():
        outs.append(np.asarray(fn(np.ascontiguousarray(img)), dtype=np.float64))
    x = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).float()
    return x.clamp(0, 1).to(y.device)


def noise_sigma(degradation: Degradation) -> float:
    """The operator's Gaussian-equivalent noise std, floored so noiseless problems stay
    well-posed (the same floor the closed-form prox uses)."""
    return max(float(degradation.sigma_n), PROX_SIGMA_FLOOR)


def odd_kernel(k: np.ndarray) -> np.ndarray:
    """Pad an even-sized kernel with a zero row/column at the end so its centre stays at
    (kh // 2, kw // 2) (the blur operator's convention) and is also ((kh' - 1) / 2, ...)
    for odd sizes, the convention of ``bm3d.bm3d_deblurring``."""
    kh, kw = k.shape
    return np.pad(k, ((0, 1 - kh % 2), (0, 1 - kw % 2)))


def blur_kernel(degradation: Degradation) -> np.ndarray:
    """The (kh, kw) kernel of a bound ``blur`` operator."""
    if degradation.name != "blur":
        raise ValueError(f"expected a blur degradation, got {degradation.name!r}")
    return np.asarray(degradation.kernel_array, dtype=np.float64)
