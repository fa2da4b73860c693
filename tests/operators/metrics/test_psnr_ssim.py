"""PSNR, Y-PSNR, SSIM and MS-SSIM against scikit-image / a numpy formula on real images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.conftest import shared_data
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from operators.metrics.psnr import psnr, psnr_y
from operators.metrics.ssim import MS_SSIM_WEIGHTS, ms_ssim, ssim, ssim_maps

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)


def _load(sub: str, names: list[str]) -> np.ndarray:
    """(B, H, W, C) or (B, H, W) float32 in [0, 1]."""
    return np.stack([np.asarray(Image.open(shared_data() / "eval" / sub / n), np.float32) / 255 for n in names])


def _noisy(a: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(a + rng.normal(0, sigma, a.shape), 0, 1).astype(np.float32)


def _nchw(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(a)
    return t[:, None] if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def pairs():
    """(name, clean, distorted) numpy batches: CBSD68 colour, Set12 grey, an odd 97x131 crop."""
    color = _load("CBSD68", ["101085.png", "102061.png"])  # 481x321 each
    gray = _load("Set12", ["01.png", "02.png"])
    odd = color[:, 100:197, 50:181]  # 97x131
    return [
        ("cbsd68", color, _noisy(color, 0.1, 0)),
        ("set12", gray, _noisy(gray, 25 / 255, 1)),
        ("odd", odd, _noisy(odd, 0.05, 2)),
    ]


def test_psnr_equals_skimage(pairs):
    for name, ref, x in pairs:
        got = psnr(_nchw(x), _nchw(ref))
        want = [sk_psnr(r, d, data_range=1) for r, d in zip(ref, x)]
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4, err_msg=name)


def test_ssim_equals_skimage(pairs):
    for name, ref, x in pairs:
        got = ssim(_nchw(x), _nchw(ref))
        axis = -1 if ref.ndim == 4 else None
        want = [sk_ssim(r, d, channel_axis=axis, **SK_SSIM) for r, d in zip(ref, x)]
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4, err_msg=name)
        assert got.shape == (ref.shape[0],)


def test_crop_border_equals_skimage_on_cropped(pairs):
    _, ref, x = pairs[2]
    b = 4
    got_p = psnr(_nchw(x), _nchw(ref), crop_border=b)
    got_s = ssim(_nchw(x), _nchw(ref), crop_border=b)
    for i in range(ref.shape[0]):
        r, d = ref[i, b:-b, b:-b], x[i, b:-b, b:-b]
        assert abs(got_p[i].item() - sk_psnr(r, d, data_range=1)) < 1e-4
        assert abs(got_s[i].item() - sk_ssim(r, d, channel_axis=-1, **SK_SSIM)) < 1e-4


def test_psnr_y_matches_numpy_formula(pairs):
    _, ref, x = pairs[2]
    b = 3

    def y(a):  # MATLAB rgb2ycbcr luma, [16, 235] / 255, in float64
        a = a.astype(np.float64)
        return (16 + 65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255

    mse = ((y(x) - y(ref))[:, b:-b, b:-b] ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(psnr_y(_nchw(x), _nchw(ref), crop_border=b).numpy(), 10 * np.log10(1 / mse), atol=1e-4)


def test_identity():
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-6)


def test_ms_ssim_monotone_in_noise(pairs):
    _, ref, _ = pairs[1]
    r = _nchw(ref)  # 256x256: 5 scales
    vals = [ms_ssim(_nchw(_noisy(ref, s, 3)), r) for s in (0.01, 0.03, 0.1, 0.3)]
    for a, b in zip(vals, vals[1:]):
        assert (a > b).all()
    assert (vals[0] > 0.95).all() and (vals[-1] < 0.7).all()


def test_ms_ssim_scale_count_and_formula():
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(2, 3, 45, 50, generator=g)
    x = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    # one scale is plain SSIM
    assert torch.allclose(ms_ssim(x, ref, scales=1), ssim(x, ref), atol=1e-6)
    # 45 px: 45 and 22 are >= 11 but 11 -> scales 45, 22, 11 (3 of 5), weights renormalised
    w = torch.tensor(MS_SSIM_WEIGHTS[:3], dtype=torch.float64)
    w = w / w.sum()
    a, b, f = x.double(), ref.double(), []
    for j in range(3):
        s_map, cs_map = ssim_maps(a, b)
        f.append((cs_map if j < 2 else s_map).mean(dim=(-2, -1)))
        a, b = torch.nn.functional.avg_pool2d(a, 2), torch.nn.functional.avg_pool2d(b, 2)
    want = (torch.stack(f, -1).clamp(min=0) ** w).prod(-1).mean(1)
    assert torch.allclose(ms_ssim(x, ref), want.float(), atol=1e-6)
    with pytest.raises(ValueError, match="smaller than"):
        ms_ssim(x[..., :10, :10], ref[..., :10, :10])
