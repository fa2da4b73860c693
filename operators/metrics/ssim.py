"""SSIM (Wang et al., TIP 2004) and MS-SSIM (Wang et al., Asilomar 2003), batched in torch.

SSIM follows scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)``: an 11x11 Gaussian window
(sigma 1.5 truncated at 3.5 sigma), population (co)variances, K1 = 0.01, K2 = 0.03, and the
SSIM map cropped by the window radius before the mean. Filtering only the "valid" part gives
exactly that cropped map, so no padding convention is involved.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from operators.metrics.psnr import shave_border
from operators.metrics.ycbcr import rgb_to_y

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, Table/Eq. 7 exponents


def gaussian_window_1d(sigma: float = 1.5, truncate: float = 3.5, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps with radius int(truncate * sigma + 0.5), as scipy.ndimage."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def filter_valid(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 2-D filtering without padding. x: (..., H, W) -> (..., H-K+1, W-K+1).

    Accumulates K shifted slices per axis in place: exact, and on CPU several times
    faster than float64 conv2d.
    """
    k, (h, wd) = w.numel(), x.shape[-2:]
    taps = w.tolist()
    out = x[..., :, : wd - k + 1] * taps[0]
    for i in range(1, k):
        out.add_(x[..., :, i : i + wd - k + 1], alpha=taps[i])
    res = out[..., : h - k + 1, :] * taps[0]
    for i in range(1, k):
        res.add_(out[..., i : i + h - k + 1, :], alpha=taps[i])
    return res


def ssim_maps(
    x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
    k1: float = 0.01, k2: float = 0.03,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM map and contrast-structure map (Wang 2004, Eq. 13 and the c*s factor), float64.

    x, ref: (B, C, H, W) -> two maps (B, C, H - 2r, W - 2r), r the window radius.
    """
    if x.shape != ref.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    win = gaussian_window_1d(sigma, dtype=torch.float64, device=x.device)
    if min(x.shape[-2:]) < win.numel():
        raise ValueError(f"image {tuple(x.shape[-2:])} is smaller than the {win.numel()}x{win.numel()} SSIM window")
    a, r = x.double(), ref.double()
    mu_a, mu_r = filter_valid(a, win), filter_valid(r, win)
    var_a = filter_valid(a * a, win) - mu_a * mu_a
    var_r = filter_valid(r * r, win) - mu_r * mu_r
    cov = filter_valid(a * r, win) - mu_a * mu_r
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    cs = (2 * cov + c2) / (var_a + var_r + c2)
    lum = (2 * mu_a * mu_r + c1) / (mu_a**2 + mu_r**2 + c1)
    return lum * cs, cs


def ssim(x: torch.Tensor, ref: torch.Tensor, crop_border: int = 0, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image, averaged over channels (scikit-image's channel_axis behaviour).

    x, ref: (B, C, H, W) -> (B,).
    """
    x, ref = shave_border(x, crop_border), shave_border(ref, crop_border)
    s, _ = ssim_maps(x, ref, data_range=data_range)
    return s.mean(dim=(1, 2, 3)).float()


def ssim_y(x: torch.Tensor, ref: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    """SSIM on the BT.601 Y channel ([16, 235] / 255). x, ref: (B, 3, H, W) -> (B,)."""
    return ssim(rgb_to_y(x.double()), rgb_to_y(ref.double()), crop_border=crop_border)


def ms_ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0, scales: int = 5) -> torch.Tensor:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003, Eq. 7), per image, averaged over channels.

    MS-SSIM = l_M^w_M * prod_j cs_j^w_j with the standard weights, 2x2 average-pool
    downsampling between scales (odd sizes drop their last row/column). Small images: a
    scale is used only while the image is still >= 11 px (the SSIM window), so an image
    smaller than 176 px gets fewer scales, and the weights of the scales used are
    renormalised to sum to 1. Negative cs/SSIM means are clamped to 0 before the
    fractional powers. x, ref: (B, C, H, W) -> (B,).
    """
    if not 1 <= scales <= len(MS_SSIM_WEIGHTS):
        raise ValueError(f"scales must be in 1..{len(MS_SSIM_WEIGHTS)}, got {scales}")
    side = min(x.shape[-2:])
    n = max(j + 1 for j in range(scales) if side // 2**j >= 11) if side >= 11 else 0
    if n == 0:
        raise ValueError(f"image side {side} is smaller than the 11 px SSIM window")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=torch.float64, device=x.device)
    weights = weights / weights.sum()
    x, ref = x.double(), ref.double()
    factors = []
    for j in range(n):
        s_map, cs_map = ssim_maps(x, ref, data_range=data_range)
        if j < n - 1:
            factors.append(cs_map.mean(dim=(-2, -1)))
            x, ref = F.avg_pool2d(x, 2), F.avg_pool2d(ref, 2)
        else:
            factors.append(s_map.mean(dim=(-2, -1)))
    vals = torch.stack(factors, dim=-1).clamp(min=0)  # (B, C, n)
    return torch.prod(vals**weights, dim=-1).mean(dim=1).float()
