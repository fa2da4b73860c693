"""Row quality (PSNR/SSIM) is computed in bands of rows: the bands must tile the whole-image
SSIM map exactly, equal scikit-image, and never hold a whole-image float64 copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from actors.columns import pack, unpack
from operators.metrics.quality import banded_sums, hwc_to_batch, quality
from operators.metrics.ssim import ssim


def pair(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.random((h, w, 3)).astype(np.float32)
    return (ref + 0.1 * rng.standard_normal(ref.shape)).astype(np.float32), ref


@pytest.mark.parametrize("band", [1, 5, 11, 64, 1000])
def test_bands_tile_the_whole_ssim_map(band):
    x, ref = pair(83, 40)
    sse, n, s_sum, s_n = banded_sums(hwc_to_batch(x), hwc_to_batch(ref), band)
    whole = ssim(hwc_to_batch(np.clip(x, 0, 1)), hwc_to_batch(ref)).double()
    assert s_n == 3 * (83 - 10) * (40 - 10)
    assert s_sum / s_n == pytest.approx(float(whole), abs=1e-6)
    assert sse / n == pytest.approx(float(np.mean((np.clip(x, 0, 1).astype(np.float64) - ref) ** 2)), rel=1e-12)


def test_quality_equals_skimage_across_band_edges():
    x, ref = pair(600, 97, seed=1)  # three bands of 256 rows
    p, s = quality(x, ref, resize=False)
    xc = np.clip(x, 0, 1)
    assert p == pytest.approx(sk_psnr(ref, xc, data_range=1), abs=1e-5)
    assert s == pytest.approx(sk_ssim(ref, xc, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False), abs=1e-6)


def test_unpack_is_a_read_only_view_equal_to_the_packed_array():
    a = np.random.default_rng(2).random((7, 5, 3)).astype(np.float32)
    data = pack(a)
    b = unpack(data)
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    assert not b.flags.writeable and not b.flags.owndata  # no copy of the row's bytes
    assert unpack(pack(np.arange(6, dtype=np.uint8).reshape(2, 3), np.uint8)).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert unpack(b"") is None
    assert torch.equal(torch.from_numpy(unpack(pack(a)).copy()), torch.from_numpy(a))
