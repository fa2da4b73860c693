"""TiledPrior: evaluate D(x, sigma) on overlapping tiles blended with raised-cosine weights.

Above a pixel budget the denoiser sees tiles of ``tile`` x ``tile`` whose neighbours overlap
by at least ``overlap``; each tile's output is weighted by a separable window that ramps as
sin^2 over the first and last ``overlap`` pixels (flat on the image border) and the weighted
sum is normalised. With an overlap of exactly ``overlap`` the two ramps sum to one (a
partition of unity), so a pointwise D is reproduced exactly and a convolutional one has its
tile-edge (padding) errors faded out. ``window="gaussian"`` weights each tile by a Gaussian
of std 0.1 x its size instead (Mixture of Diffusers / DiffBIR's tiled sampling, LatentINDIGO
Alg. 3). The whole-image call counts as one NFE: the wrapper shares the inner prior's counter
and calls the inner ``_denoise`` per tile batch.
"""
from __future__ import annotations

import math

import torch

from operators.priors.base import Prior


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``length``, overlap >= ``overlap``."""
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def ramp_window(size: int, overlap: int, first: bool, last: bool, dtype, device) -> torch.Tensor:
    """1-D weights: sin^2 ramps over ``overlap`` samples at inner edges, 1 elsewhere. (size,)"""
    w = torch.ones(size, dtype=torch.float64)
    if overlap > 0:
        t = torch.arange(overlap, dtype=torch.float64)
        up = torch.sin(math.pi * (t + 0.5) / (2 * overlap)) ** 2
        if not first:
            w[:overlap] = up
        if not last:
            w[size - overlap:] = up.flip(0)
    return w.to(dtype=dtype, device=device)


def gaussian_window(size: int, dtype, device) -> torch.Tensor:
    """1-D weights exp(-(t - mid)^2 / (2 (0.1 size)^2)), mid the tile's centre. (size,)"""
    t = torch.arange(size, dtype=torch.float64)
    return torch.exp(-((t - (size - 1) / 2) / size) ** 2 / 0.02).to(dtype=dtype, device=device)


class TiledPrior(Prior):
    """Wraps ``inner``; D runs in tiles when H * W of its input exceeds ``max_pixels``."""

    def __init__(self, inner: Prior, max_pixels: int = 512 * 512, tile: int = 256,
                 overlap: int = 64, batch: int = 4, window: str = "cosine"):
        super().__init__()
        if not 0 <= 2 * overlap <= tile:
            raise ValueError(f"need 0 <= 2 * overlap <= tile, got overlap={overlap}, tile={tile}")
        if window not in ("cosine", "gaussian"):
            raise ValueError(f"window must be 'cosine' or 'gaussian', got {window!r}")
        self.window = window
        self.inner = inner
        self.nfe = inner.nfe  # shared counter: one whole-image call is one NFE
        self.max_pixels, self.tile, self.overlap, self.batch = max_pixels, tile, overlap, batch
        self.space, self.channels, self.name = inner.space, inner.channels, inner.name
        self.sigma_min, self.sigma_max = inner.sigma_min, inner.sigma_max
        self.codec = inner.codec  # encode / decode still go through the inner prior

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(z)

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        """x: (B, C, H, W); sigma: (B,)."""
        B, _, H, W = x.shape
        if H * W <= self.max_pixels:
            return self.inner._denoise(x, sigma, prompt)
        th, tw = min(self.tile, H), min(self.tile, W)
        rows, cols = tile_starts(H, self.tile, self.overlap), tile_starts(W, self.tile, self.overlap)
        boxes = [(r, c) for r in rows for c in cols]
        out, wsum = None, torch.zeros(1, 1, H, W, dtype=x.dtype, device=x.device)
        for k in range(0, len(boxes), self.batch):
            chunk = boxes[k:k + self.batch]
            tiles = torch.cat([x[:, :, r:r + th, c:c + tw] for r, c in chunk])
            den = self.inner._denoise(tiles, sigma.repeat(len(chunk)), prompt)
            if out is None:
                out = torch.zeros(B, den.shape[1], H, W, dtype=den.dtype, device=den.device)
            for j, (r, c) in enumerate(chunk):
                if self.window == "gaussian":
                    wy, wx = gaussian_window(th, x.dtype, x.device), gaussian_window(tw, x.dtype, x.device)
                else:
                    wy = ramp_window(th, self.overlap, r == rows[0], r == rows[-1], x.dtype, x.device)
                    wx = ramp_window(tw, self.overlap, c == cols[0], c == cols[-1], x.dtype, x.device)
                w = wy[:, None] * wx[None, :]
                out[:, :, r:r + th, c:c + tw] += w * den[j * B:(j + 1) * B]
                wsum[:, :, r:r + th, c:c + tw] += w
        return out / wsum


def tiled(prior: Prior, max_pixels: int, tile: int, overlap: int, batch: int = 4,
          window: str = "cosine") -> TiledPrior:
    """``prior`` wrapped in a :class:`TiledPrior` (re-wrapped with these settings if it is one)."""
    inner = prior.inner if isinstance(prior, TiledPrior) else prior
    return TiledPrior(inner, max_pixels=max_pixels, tile=tile, overlap=overlap, batch=batch, window=window)
