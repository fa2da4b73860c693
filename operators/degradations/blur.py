"""Blur: circular (FFT) convolution with a Gaussian, motion or given kernel, so the adjoint,
pseudo-inverse and prox are exact (ALGORITHMS.md, circular blur)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from operators.degradations._util import check_4d, rho_tensor
from operators.degradations.base import Degradation, Noise
from operators.degradations.kernels import (
    gaussian_kernel,
    load_kernel,
    psf2otf,
    sample_motion_kernel,
)

PINV_TOL = 1e-6  # frequencies with |K| below this (kernel sums to 1) are dropped by pinv


def resolve_kernel(kind: str, sigma: Any, angle: float, size: int | None, kernel: Any,
                   kernel_file: str | None, index: int) -> np.ndarray | None:
    """The kernel array a blur spec names, or None when it is still to be sampled (motion)."""
    if kernel is not None:
        k = np.asarray(kernel, dtype=np.float64)
        if k.ndim != 2:
            raise ValueError(f"blur kernel must be 2-D, got shape {k.shape}")
        return k
    if kernel_file is not None:
        return load_kernel(kernel_file, index)
    if kind == "gaussian":
        return gaussian_kernel(sigma, angle, size)
    if kind in ("motion", "kernel"):
        return None
    raise ValueError(f"unknown blur kind {kind!r}; valid: gaussian, motion, kernel")


@dataclass(frozen=True, eq=False)
class Blur(Degradation):
    """y = k (*) x, circular. x, y: (B, C, H, W).

    ``kind="gaussian"``: ``sigma`` a float or (sigma_x, sigma_y) rotated by ``angle`` degrees.
    ``kind="motion"``: ``kernel`` / ``kernel_file`` + ``index``, else drawn at ``bind``.
    ``kind="kernel"``: any given ``kernel`` array or ``kernel_file``."""

    name: ClassVar[str] = "blur"
    linear: ClassVar[bool] = True
    kind: Literal["gaussian", "motion", "kernel"] | str = "gaussian"
    sigma: float | tuple[float, float] = 2.0
    angle: float = 0.0
    size: int | None = None
    kernel: np.ndarray | None = None
    kernel_file: str | None = None
    index: int = 0
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if not np.isscalar(self.sigma):
            object.__setattr__(self, "sigma", tuple(float(s) for s in self.sigma))
        if self.kernel is not None:
            object.__setattr__(self, "kernel", np.asarray(self.kernel, dtype=np.float64))
        k = resolve_kernel(self.kind, self.sigma, self.angle, self.size, self.kernel, self.kernel_file, self.index)
        object.__setattr__(self, "_k", k)

    @property
    def kernel_array(self) -> np.ndarray:
        if self._k is None:
            raise ValueError(f"blur kind {self.kind!r}: no kernel yet; call bind(shape, generator) or pass kernel=")
        return self._k

    @classmethod
    def sample(cls, generator: torch.Generator, kind: str = "gaussian", **p: Any) -> "Blur":
        """A random blur: ``gaussian`` without ``sigma`` draws sigma_x, sigma_y in [0.5, 3] and
        an angle in [0, 180) degrees; ``motion`` without a kernel draws a trajectory."""
        if kind == "gaussian" and "sigma" not in p:
            u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
            p["sigma"] = (0.5 + 2.5 * u[0], 0.5 + 2.5 * u[1])
            p.setdefault("angle", 180.0 * u[2])
        noise = p.pop("noise", Noise())
        return cls.from_params(kind=kind, noise=noise, **p).bind((), generator)

    def bind(self, shape: tuple[int, ...], generator: torch.Generator | None) -> "Blur":
        if self._k is not None:
            return self
        if generator is None:
            raise ValueError("blur: sampling a motion kernel needs a torch.Generator")
        return replace(self, kernel=sample_motion_kernel(generator, self.size or 25))

    def params(self) -> dict[str, Any]:
        p = {"kind": self.kind, "sigma": list(self.sigma) if isinstance(self.sigma, tuple) else self.sigma,
             "angle": self.angle, "size": self.size, "kernel_file": self.kernel_file, "index": self.index,
             "kernel": None if self.kernel is None else self.kernel.tolist()}
        return p

    # -- operator -----------------------------------------------------------------------
    def _otf(self, x: torch.Tensor) -> torch.Tensor:
        check_4d(x)
        h, w = x.shape[-2:]
        return self._cached(("otf", h, w, x.device, x.dtype),
                            lambda: psf2otf(self.kernel_array, h, w, x.device, x.dtype, onesided=True))

    def _apply(self, x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x) * spectrum, s=x.shape[-2:])

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """K: (H, W // 2 + 1) complex, for images shaped like x (B, C, H, W). A = F^-1 diag(K) F
        with F the real FFT (orthonormal with norm="ortho"), so A's singular values are |K| and
        ``pinv`` keeps the frequencies with |K| > PINV_TOL (DDNM+ per singular value uses this)."""
        return self._otf(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, self._otf(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(y, self._otf(y).conj())

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """conj(K) / |K|^2 on frequencies with |K| > PINV_TOL, 0 elsewhere."""
        k = self._otf(y)
        a2 = k.abs() ** 2
        inv = torch.where(a2 > PINV_TOL**2, k.conj() / a2.clamp(min=PINV_TOL**2), torch.zeros_like(k))
        return self._apply(y, inv)

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """X = (conj(K) Y + alpha Z) / (|K|^2 + alpha), alpha = rho sigma_n^2 (ALGORITHMS.md)."""
        k = self._otf(z)
        alpha = rho_tensor(rho, z) * self.prox_sigma2
        num = k.conj() * torch.fft.rfft2(y) + alpha * torch.fft.rfft2(z)
        return torch.fft.irfft2(num / (k.abs() ** 2 + alpha), s=z.shape[-2:])

    def init_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """The blurred image itself: pinv would amplify noise at weak frequencies."""
        return y.clamp(0, 1)
