"""Per-axis resize matrices: MATLAB ``imresize`` bicubic (antialiased) and block averaging,
plus the cached factors (pseudo-inverses, eigen-decompositions) the sr operator needs."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of MATLAB imresize(..., 'bicubic') along one axis, antialiased when
    shrinking (kernel stretched by 1/scale), borders by symmetric reflection (MATLAB's
    ``contributions``)."""
    scale = n_out / n_in
    width = 4.0
    if scale < 1:
        kernel = lambda t: scale * cubic(scale * t)  # noqa: E731
        width /= scale
    else:
        kernel = cubic
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based source coordinate
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    ind = left[:, None] + np.arange(taps)[None, :]
    wts = kernel(u[:, None] - ind)
    wts /= wts.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])  # symmetric padding
    src = mirror[np.mod(ind.astype(np.int64) - 1, 2 * n_in)]
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), taps), src.ravel()), wts.ravel())
    return m


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) average of distinct blocks of n_in / n_out pixels."""
    s = n_in // n_out
    return np.kron(np.eye(n_out), np.full((1, s), 1.0 / s))


@lru_cache(maxsize=64)
def axis_factors(mode: str, n_in: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For one axis: W (n, N), pinv(W) (N, n), and W^T W = U diag(lam) U^T as (lam, U)."""
    n_out = n_in // scale
    w = bicubic_matrix(n_in, n_out) if mode == "bicubic" else area_matrix(n_in, n_out)
    lam, u = np.linalg.eigh(w.T @ w)
    return w, np.linalg.pinv(w), np.clip(lam, 0, None), u
