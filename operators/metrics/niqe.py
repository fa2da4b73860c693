"""NIQE, the "completely blind" quality score (Mittal, Soundararajan & Bovik, IEEE SPL 2013).

The MATLAB/BasicSR definition: the Y channel (BT.601, [16, 235], rounded to integers),
cropped to whole 96x96 blocks; at two scales (the second a MATLAB-bicubic half-size image)
the MSCN coefficients (7x7 Gaussian, sigma 7/6, Eq. 1) give 18 AGGD/GGD features per block
(Eqs. 2-8), 36 in all; the score is the distance between the image's feature Gaussian and
the pristine one, sqrt((mu_p - mu)^T ((S_p + S) / 2)^+ (mu_p - mu)) (Eq. 10). Lower is better.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from operators.metrics.psnr import shave_border
from operators.metrics.ssim import filter_valid
from operators.metrics.ycbcr import rgb_to_y

BLOCK = 96
DEFAULT_NIQE_MODEL = Path(__file__).resolve().parents[2] / "weights" / "niqe_pristine_restoray.npz"


def _gauss_1d(size: int = 7, sigma: float = 7 / 6) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def niqe_window(size: int = 7, sigma: float = 7 / 6) -> torch.Tensor:
    """The normalised 2-D Gaussian of MATLAB's fspecial('gaussian', 7, 7/6): (size, size) float64."""
    g = _gauss_1d(size, sigma)
    return g[:, None] * g[None, :]


def mscn(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSCN coefficients (Eq. 1, C = 1) and the local deviation. img: (N, 1, H, W) on [0, 255].

    The 7x7 window is separable; borders replicate (MATLAB imfilter 'replicate').
    """
    g = _gauss_1d().to(img)
    pad = lambda t: F.pad(t, (3, 3, 3, 3), mode="replicate")  # noqa: E731
    mu = filter_valid(pad(img), g)
    sigma = (filter_valid(pad(img * img), g) - mu * mu).abs().sqrt()
    return (img - mu) / (sigma + 1), sigma


def _cubic(t: torch.Tensor) -> torch.Tensor:
    """Keys' cubic kernel with a = -0.5 (MATLAB imresize)."""
    a = t.abs()
    return torch.where(a <= 1, 1.5 * a**3 - 2.5 * a**2 + 1,
                       torch.where(a <= 2, -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2, torch.zeros_like(a)))


def imresize_half(img: torch.Tensor) -> torch.Tensor:
    """MATLAB imresize(img, 0.5) (bicubic, antialiased) for even H, W. img: (N, 1, H, W).

    Each output sample sits between two inputs; its 8 taps lie at distances +-0.5 ... +-3.5
    with weights cubic(d / 2), normalised; borders are mirrored with the edge repeated.
    """
    d = torch.arange(-3.5, 4.0, 1.0, dtype=img.dtype, device=img.device)
    k = _cubic(d / 2)
    k = k / k.sum()
    for dim in (-1, -2):
        n = img.shape[dim]
        img = torch.cat([img.narrow(dim, 0, 3).flip(dim), img, img.narrow(dim, n - 3, 3).flip(dim)], dim=dim)
        img = img.unfold(dim, 8, 2) @ k
    return img


@lru_cache(maxsize=4)
def _rho_grid(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The shape grid 0.2:0.001:10 and rho(g) = Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g)), increasing in g."""
    g = torch.arange(200, 10001, dtype=torch.float64, device=device) / 1000
    rho = torch.exp(2 * torch.lgamma(2 / g) - torch.lgamma(1 / g) - torch.lgamma(3 / g))
    return g, rho


def aggd_fit(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moment-matching AGGD fit (Lasmar et al. 2009) over the last axis: (alpha, beta_l, beta_r).

    v: (..., n) -> three (...) tensors. NaN where one side of the distribution is empty.
    """
    neg, pos = (v < 0).double(), (v > 0).double()
    left = ((v * v * neg).sum(-1) / neg.sum(-1)).sqrt()
    right = ((v * v * pos).sum(-1) / pos.sum(-1)).sqrt()
    gam = left / right
    rhat = v.abs().mean(-1) ** 2 / (v * v).mean(-1)
    rnorm = rhat * (gam**3 + 1) * (gam + 1) / (gam**2 + 1) ** 2
    grid, rho = _rho_grid(str(v.device))
    # nearest grid point of the monotone rho (= argmin of the squared error)
    hi = torch.searchsorted(rho, rnorm.nan_to_num(0.0).contiguous()).clamp(1, rho.numel() - 1)
    idx = torch.where((rho[hi] - rnorm).abs() < (rnorm - rho[hi - 1]).abs(), hi, hi - 1)
    idx = torch.where(rnorm.isnan(), torch.zeros_like(idx), idx)
    alpha = grid[idx]
    scale = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha, left * scale, right * scale


def block_features(blocks: torch.Tensor) -> torch.Tensor:
    """The 18 NIQE features of MSCN blocks (Eqs. 2-8). blocks: (..., h, w) -> (..., 18)."""
    a, bl, br = aggd_fit(blocks.flatten(-2))
    feats = [a, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # H, V, D1, D2 neighbour products, Eq. 6
        prod = blocks * torch.roll(blocks, shift, dims=(-2, -1))
        a, bl, br = aggd_fit(prod.flatten(-2))
        mean = (br - bl) * torch.exp(torch.lgamma(2 / a) - torch.lgamma(1 / a))  # Eq. 8
        feats += [a, mean, bl, br]
    return torch.stack(feats, dim=-1)


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, H, W) with H, W multiples of size -> (N, nb, size, size), column-major block order."""
    n, _, h, w = x.shape
    x = x.reshape(n, h // size, size, w // size, size).permute(0, 3, 1, 2, 4)
    return x.reshape(n, -1, size, size)


def niqe_features(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block features and sharpness. y: (N, 1, H, W) luma on [0, 255], H, W >= 96.

    Returns (N, nb, 36) features of the whole 96x96 blocks and (N, nb) block sharpness
    (mean local deviation at scale 1, the patch-selection criterion of the paper).
    """
    h, w = (s // BLOCK * BLOCK for s in y.shape[-2:])
    if h == 0 or w == 0:
        raise ValueError(f"NIQE needs an image of at least {BLOCK}x{BLOCK}, got {tuple(y.shape[-2:])}")
    img = y[..., :h, :w].double()
    feats, sharpness = [], None
    for scale in (1, 2):
        m, sigma = mscn(img)
        feats.append(block_features(_blocks(m, BLOCK // scale)))
        if scale == 1:
            sharpness = _blocks(sigma, BLOCK).mean(dim=(-2, -1))
            img = imresize_half(img)
    return torch.cat(feats, dim=-1), sharpness


def to_luma255(x: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    """[0, 1] RGB or gray (B, C, H, W) -> rounded luma on [0, 255], (B, 1, H', W'), float64."""
    y = (rgb_to_y(x.double()) * 255).round()
    return shave_border(y, crop_border)


@dataclass(frozen=True, eq=False)
class NIQEModel:
    """A pristine multivariate Gaussian: mu (36,), cov (36, 36), float64."""

    mu: torch.Tensor
    cov: torch.Tensor

    @classmethod
    def load(cls, path: str | Path = DEFAULT_NIQE_MODEL) -> NIQEModel:
        """From an .npz with ``mu_pris_param`` (1, 36) and ``cov_pris_param`` (36, 36)."""
        with np.load(path) as d:
            mu, cov = d["mu_pris_param"], d["cov_pris_param"]
        return cls(torch.from_numpy(mu.reshape(-1).astype(np.float64)), torch.from_numpy(cov.astype(np.float64)))

    def save(self, path: str | Path) -> None:
        np.savez(path, mu_pris_param=self.mu.reshape(1, -1).numpy(), cov_pris_param=self.cov.numpy(),
                 gaussian_window=niqe_window().numpy())


@lru_cache(maxsize=4)
def _load_cached(path: str) -> NIQEModel:
    return NIQEModel.load(path)


def niqe_distance(feats: torch.Tensor, model: NIQEModel) -> torch.Tensor:
    """Eq. 10 for one image. feats: (nb, 36) -> () float64; NaN with fewer than 2 NaN-free blocks."""
    mu = feats.nanmean(dim=0)
    ok = feats[~feats.isnan().any(dim=1)]
    if ok.shape[0] < 2:
        return torch.tensor(float("nan"), dtype=torch.float64)
    cov = torch.cov(ok.T)
    d = (model.mu.to(mu) - mu)[None]
    q = d @ torch.linalg.pinv((model.cov.to(cov) + cov) / 2) @ d.T
    return q.squeeze().sqrt()


def niqe(x: torch.Tensor, model: NIQEModel | str | Path | None = None, crop_border: int = 0) -> torch.Tensor:
    """NIQE per image (lower is better). x: (B, C, H, W) in [0, 1], C in {1, 3} -> (B,) float32.

    ``model``: a NIQEModel or an .npz path; default the project's pristine model in weights/.
    """
    if model is None or isinstance(model, (str, Path)):
        model = _load_cached(str(model or DEFAULT_NIQE_MODEL))
    feats, _ = niqe_features(to_luma255(x, crop_border))
    feats = feats.cpu()
    return torch.stack([niqe_distance(f, model) for f in feats]).float().to(x.device)
