"""Blur.spectrum: the transfer function K that diagonalises circular blur in the real-FFT basis
(what DDNM+ per singular value needs): forward = F^-1 diag(K) F, singular values = |K|."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from operators.degradations import Blur


def dense(op: Blur, h: int, w: int) -> torch.Tensor:
    """The (HW, HW) matrix of A on one channel, column j = A e_j, in float64."""
    eye = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    return op.forward(eye).reshape(h * w, h * w).T


@pytest.mark.parametrize("op", [Blur(sigma=(1.5, 0.7), angle=30.0),
                                Blur(kind="kernel", kernel=np.random.default_rng(0).random((5, 4)))],
                         ids=["aniso-gauss", "random-kernel"])
def test_spectrum_diagonalises_the_blur_and_gives_its_singular_values(op):
    h, w = 6, 7  # odd width: the one-sided spectrum has no Nyquist column
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k = op.spectrum(x)
    assert k.shape == (h, w // 2 + 1) and k.is_complex()
    applied = torch.fft.irfft2(torch.fft.rfft2(x, norm="ortho") * k, s=(h, w), norm="ortho")
    assert torch.allclose(applied, op.forward(x), atol=1e-12)
    # the full spectrum from the one-sided one by Hermitian symmetry: |K(u, v)| = |K(-u, -v)|
    full = torch.empty(h, w, dtype=torch.float64)
    for u in range(h):
        for v in range(w):
            full[u, v] = k[u, v].abs() if v <= w // 2 else k[(-u) % h, w - v].abs()
    svd = torch.linalg.svdvals(dense(op, h, w))
    assert torch.allclose(torch.sort(full.flatten(), descending=True).values, svd, atol=1e-10)
