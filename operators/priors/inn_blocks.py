"""Pieces of the lifting-scheme INN (operators/priors/inn.py): the Haar split / merge, the
predict / update networks and the degradation encoder (You, Siromani, Dragotti, LatentINDIGO,
arXiv 2505.12935, Sec. III-B1 and IV-A).

Substitutes, for CPU training: each predict / update module is conv, two residual conv blocks,
conv, where the paper has conv, two MRSTBs (Swin layers), conv; the degradation embedding comes
from a small CNN on the LQ image (global-average pooled), where the paper uses the KDSR
estimator of Xia et al. 2023, whose weights are not available. Both keep the channel-wise
scaling of every block by an FC layer on the embedding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# -- split / merge --------------------------------------------------------------------------
def haar_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal Haar on 2 x 2 blocks, then the lifting scheme's scaling step on the coarse
    band (LL / 2), so c is the block mean and keeps the image's range.

    x: (B, C, H, W), H and W even -> c: (B, C, H/2, W/2), d = (LH, HL, HH): (B, 3C, H/2, W/2)."""
    B, C, H, W = x.shape
    a, b, c, d = F.pixel_unshuffle(x, 2).view(B, C, 4, H // 2, W // 2).unbind(2)  # (0,0) (0,1) (1,0) (1,1)
    ll, lh = (a + b + c + d) / 2, (a - b + c - d) / 2
    hl, hh = (a + b - c - d) / 2, (a - b - c + d) / 2
    return ll / 2, torch.cat([lh, hl, hh], dim=1)


def haar_merge(c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`haar_split`: (B, C, h, w), (B, 3C, h, w) -> (B, C, 2h, 2w)."""
    ll, (lh, hl, hh) = 2 * c, d.chunk(3, dim=1)
    a, b = (ll + lh + hl + hh) / 2, (ll - lh + hl - hh) / 2
    c_, d_ = (ll + lh - hl - hh) / 2, (ll - lh - hl + hh) / 2
    B, C, h, w = c.shape
    return F.pixel_shuffle(torch.stack([a, b, c_, d_], dim=2).reshape(B, 4 * C, h, w), 2)


def _shift(x: torch.Tensor, s: int, dim: int) -> torch.Tensor:
    """x[i + s] along ``dim`` (-1 or -2), the last samples replicated past the border."""
    pad = (0, s, 0, 0) if dim == -1 else (0, 0, 0, s)
    return F.pad(x, pad, mode="replicate").narrow(dim, s, x.shape[dim])


def undecimated_split(x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stationary (a trous) Haar at dilation 2^level, averaging filters (1, 1)/2 and (1, -1)/2
    along W then H: x: (B, C, H, W) -> c: (B, C, H, W) (local mean), d: (B, 3C, H, W).
    Scaled so that x = c + sum of the three detail bands exactly (:func:`undecimated_merge`)."""
    s = 2**level
    lo, hi = (x + _shift(x, s, -1)) / 2, (x - _shift(x, s, -1)) / 2
    ll, lh = (lo + _shift(lo, s, -2)) / 2, (lo - _shift(lo, s, -2)) / 2
    hl, hh = (hi + _shift(hi, s, -2)) / 2, (hi - _shift(hi, s, -2)) / 2
    return ll, torch.cat([lh, hl, hh], dim=1)


def undecimated_merge(c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """x = c + LH + HL + HH: the left inverse of :func:`undecimated_split` (any level)."""
    return c + d.view(d.shape[0], 3, -1, *d.shape[-2:]).sum(1)


# -- predict / update modules and the degradation embedding -------------------------------
class ScaledResBlock(nn.Module):
    """h + conv(SiLU(conv(h))) * (1 + FC(e)): a residual conv block whose branch is scaled
    channel-wise by the degradation embedding (stands in for an MRSTB)."""

    def __init__(self, width: int, embed_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(embed_dim, width)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return h + self.conv2(F.silu(self.conv1(h))) * (1 + self.fc(e))[:, :, None, None]


class LiftingNet(nn.Module):
    """A predict (C -> 3C) or update (3C -> C) module: conv, 2 scaled residual blocks, conv.
    The last conv starts at zero, so an untrained INN is the plain Haar transform."""

    def __init__(self, c_in: int, c_out: int, width: int, embed_dim: int):
        super().__init__()
        self.inp = nn.Conv2d(c_in, width, 3, padding=1)
        self.blocks = nn.ModuleList(ScaledResBlock(width, embed_dim) for _ in range(2))
        self.out = nn.Conv2d(width, c_out, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)


class LiftingLevel(nn.Module):
    """``pairs`` predict / update steps on one level (Eqs. 3-4 of the paper, additive lifting):
    d <- d - P(c, e); c <- c + U(d, e). :meth:`inverse` runs them in reverse with opposite signs,
    so it is exact for any weights and any e."""

    def __init__(self, channels: int, width: int, embed_dim: int, pairs: int):
        super().__init__()
        self.predict = nn.ModuleList(LiftingNet(channels, 3 * channels, width, embed_dim) for _ in range(pairs))
        self.update = nn.ModuleList(LiftingNet(3 * channels, channels, width, embed_dim) for _ in range(pairs))

    def forward(self, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for P, U in zip(self.predict, self.update):
            d = d - P(c, e)
            c = c + U(d, e)
        return c, d

    def inverse(self, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for P, U in zip(reversed(self.predict), reversed(self.update)):
            c = c - U(d, e)
            d = d + P(c, e)
        return c, d


class DegradationEncoder(nn.Module):
    """e = mean over pixels of a 3-conv CNN on the LQ image: (B, C_lq, h, w) -> (B, embed_dim)."""

    def __init__(self, in_channels: int, embed_dim: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * width, embed_dim, 3, padding=1),
        )  # fmt: skip

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(2 * y - 1).mean(dim=(-2, -1))
