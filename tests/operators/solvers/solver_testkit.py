"""Shared pieces of the solver tests: the exact Gaussian problem, a linear latent codec, a
fixed non-pointwise conv denoiser, a non-linear operator, and an affine fit of E[x | y]."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from operators.degradations import Denoise, Inpaint, Noise
from operators.degradations.base import Degradation
from operators.priors.base import Codec, GaussianPrior, Prior

S2, MEAN = 0.02, 0.5  # prior x0 ~ N(0.5, 0.02 I): std 0.14, so [0, 1] clamping is rare


def gaussian_prior(latent: bool = False, s2: float = S2) -> GaussianPrior:
    """The exact prior; ``latent``: the same prior seen through :class:`UnshuffleCodec`."""
    prior = GaussianPrior(s2=s2, mean=MEAN)
    if latent:
        prior.codec = UnshuffleCodec()
        prior.space, prior.channels = "latent", 12
    return prior


class UnshuffleCodec(Codec):
    """An orthogonal linear codec (2x2 space-to-depth): a Gaussian i.i.d. prior on z is the same
    prior on x, so latent solvers keep the closed-form posterior."""

    factor, latent_channels = 2, 12

    def encode(self, x):
        return F.pixel_unshuffle(x, 2)

    def decode(self, z):
        return F.pixel_shuffle(z, 2)


def mask_op(shape: tuple[int, int], sigma: float, seed: int = 0, fraction: float = 0.5) -> Inpaint:
    """A random pixel mask (True = observed) with Gaussian noise ``sigma``."""
    rng = np.random.default_rng(seed)
    return Inpaint(mask=rng.random(shape) >= fraction, noise=Noise(sigma=sigma))


def denoise_op(sigma: float) -> Denoise:
    return Denoise(noise=Noise(sigma=sigma))


def measure(op: Degradation, shape: tuple[int, ...], seed: int = 0):
    """x ~ the prior, y = A x + n: both (B, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    x = MEAN + S2**0.5 * torch.randn(shape, generator=g)
    return x, op.measure(x, g)


def posterior(op: Degradation, y: torch.Tensor, s2: float = S2):
    """Closed-form posterior mean and (for A = I or a mask: elementwise) variance:
    mean = argmin ||y - A x||^2 / (2 sigma_n^2) + ||x - m||^2 / (2 s2) = prox(m, y, 1 / s2),
    for a mask (A^T y / sigma_n^2 + m / s2) / (A^T A / sigma_n^2 + 1 / s2); var = 1 / (...)."""
    mean = op.prox(torch.full_like(y, MEAN), y, 1 / s2)
    ata = op.adjoint(op.forward(torch.ones_like(y)))
    return mean, 1 / (ata / op.sigma_n**2 + 1 / s2)


def transfer(op: Degradation, shape: tuple[int, int]) -> torch.Tensor:
    """|K_f|^2 of a circular, shift-invariant A: the FFT of A^T A applied to a delta. (H, W)"""
    delta = torch.zeros(1, 1, *shape, dtype=torch.float64)
    delta[..., 0, 0] = 1
    return torch.fft.fft2(op.adjoint(op.forward(delta))).real[0, 0]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fit_affine(y: torch.Tensor, out: torch.Tensor, where: torch.Tensor | None = None):
    """Least-squares out - m = c (y - m) + b over pixels: (slope c, offset b, residual std).
    Pixels are independent in the Gaussian denoise / mask problems, so this estimates E[out | y]
    with a Monte-Carlo error of about resid_std / (std(y) sqrt(N))."""
    d, o = (y - MEAN).flatten(), (out - MEAN).flatten()
    if where is not None:
        d, o = d[where.flatten()], o[where.flatten()]
    A = torch.stack([d, torch.ones_like(d)], 1).double()
    sol = torch.linalg.lstsq(A, o.double()[:, None]).solution.flatten()
    resid = o.double() - A @ sol
    return float(sol[0]), float(sol[1]), float(resid.std())


class ConvPrior(Prior):
    """A fixed, non-pointwise "denoiser": x + 0.2 tanh(conv(relu(conv(x)))) with random 3x3
    weights and zero padding, so tile edges see different context than the whole image."""

    name = "conv"

    def __init__(self, channels: int = 3, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(8, channels, 3, 3, generator=g) / 3
        self.b1 = torch.randn(8, generator=g) * 0.3
        self.w2 = torch.randn(channels, 8, 3, 3, generator=g) / 6
        self.sigma_min, self.sigma_max, self.channels = 0.002, 10.0, channels

    def _denoise(self, x, sigma, prompt):
        h = F.relu(F.conv2d(x, self.w1, self.b1, padding=1))
        return x + 0.2 * torch.tanh(F.conv2d(h, self.w2, padding=1)) / (1 + sigma.view(-1, 1, 1, 1))


@dataclass(frozen=True, eq=False)
class Square(Degradation):
    """A non-linear toy operator y = x^2 (no adjoint, pinv or prox)."""

    name: ClassVar[str] = "square"
    noise: Noise = field(default_factory=Noise)

    def forward(self, x):
        return x * x
