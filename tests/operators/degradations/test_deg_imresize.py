"""sr bicubic = MATLAB imresize (antialiased cubic, a = -0.5, symmetric borders), checked
against a direct per-pixel transcription of MATLAB's algorithm."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from operators.degradations import SuperResolution
from operators.degradations.imresize import bicubic_matrix


def _cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _reflect(j: int, n: int) -> int:
    """1-based index folded into [1, n] by symmetric padding (edge sample repeated)."""
    while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j


def _taps(i: int, n_in: int, s: int) -> list[tuple[int, float]]:
    """Source pixels and weights of output pixel i (1-based) when shrinking n_in by s."""
    scale = 1 / s
    u = i / scale + 0.5 * (1 - 1 / scale)
    width = 4 / scale
    left = math.floor(u - width / 2)
    taps = [(left + p, scale * _cubic(scale * (u - (left + p)))) for p in range(math.ceil(width) + 2)]
    total = sum(w for _, w in taps)
    return [(_reflect(j, n_in), w / total) for j, w in taps]


def _reference(img: np.ndarray, s: int) -> np.ndarray:
    h, w = img.shape
    out = np.zeros((h // s, w // s))
    for i in range(h // s):
        ti = _taps(i + 1, h, s)
        for j in range(w // s):
            tj = _taps(j + 1, w, s)
            out[i, j] = sum(wi * wj * img[ri - 1, rj - 1] for ri, wi in ti for rj, wj in tj)
    return out


@pytest.mark.parametrize("s,hw", [(2, (10, 14)), (3, (9, 15)), (4, (12, 16)), (8, (16, 24))])
def test_forward_matches_per_pixel_matlab_reference(s, hw):
    img = torch.rand(*hw, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
    ours = SuperResolution(scale=s).forward(img[None, None])[0, 0].numpy()
    np.testing.assert_allclose(ours, _reference(img.numpy(), s), rtol=0, atol=1e-12)


def test_constant_image_stays_constant_and_kernel_is_antialiased():
    x = torch.full((1, 3, 32, 48), 0.37, dtype=torch.float64)
    y = SuperResolution(scale=4).forward(x)
    torch.testing.assert_close(y, torch.full((1, 3, 8, 12), 0.37, dtype=torch.float64), rtol=0, atol=1e-14)
    m = bicubic_matrix(64, 16)
    assert np.count_nonzero(m[8]) == 16  # the cubic stretched to width 4 s = 16 source pixels
    # output 8 (0-based) sits at source 33.5 (0-based): its weights are symmetric about it
    np.testing.assert_allclose(m[8, 26:34], m[8, 34:42][::-1], atol=1e-15)
