"""Super-resolution: s-fold downsampling by MATLAB-bicubic, block average (area), or blur +
decimation (circular). x: (B, C, H, W) with H, W multiples of s -> y: (B, C, H/s, W/s)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from operators.degradations._util import check_4d, check_divisible, rho_tensor
from operators.degradations.base import Degradation, Noise
from operators.degradations.blur import PINV_TOL, resolve_kernel
from operators.degradations.imresize import axis_factors
from operators.degradations.kernels import psf2otf


@dataclass(frozen=True, eq=False)
class SuperResolution(Degradation):
    """``mode``: ``bicubic`` (y = Wh x Ww^T), ``area``, or ``blur_decimate`` (y = (k (*) x)[::s, ::s],
    k Gaussian of ``sigma`` (default s / 2) or a given ``kernel`` / ``kernel_file`` + ``index``)."""

    name: ClassVar[str] = "sr"
    linear: ClassVar[bool] = True
    scale: int = 4
    mode: Literal["bicubic", "area", "blur_decimate"] | str = "bicubic"
    sigma: float | None = None
    kernel: np.ndarray | None = None
    kernel_file: str | None = None
    index: int = 0
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if self.scale not in (2, 3, 4, 8):
            raise ValueError(f"sr scale must be one of 2, 3, 4, 8, got {self.scale}")
        if self.mode not in ("bicubic", "area", "blur_decimate"):
            raise ValueError(f"unknown sr mode {self.mode!r}; valid: area, bicubic, blur_decimate")
        if self.kernel is not None:
            object.__setattr__(self, "kernel", np.asarray(self.kernel, dtype=np.float64))
        k = None
        if self.mode == "blur_decimate":
            sigma = self.sigma if self.sigma is not None else self.scale / 2
            k = resolve_kernel("gaussian", sigma, 0.0, None, self.kernel, self.kernel_file, self.index)
        object.__setattr__(self, "_k", k)

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "sigma": self.sigma,
                "kernel": None if self.kernel is None else self.kernel.tolist(),
                "kernel_file": self.kernel_file, "index": self.index}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        check_divisible(shape, self.scale, f"sr x{self.scale}")
        return (*shape[:-2], shape[-2] // self.scale, shape[-1] // self.scale)

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-2], shape[-2] * self.scale, shape[-1] * self.scale)

    # -- separable modes (bicubic, area) ------------------------------------------------
    def _mats(self, h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        def make():
            t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=like.dtype, device=like.device)  # noqa: E731
            return tuple(t(a) for a in axis_factors(self.mode, h, self.scale) + axis_factors(self.mode, w, self.scale))
        return self._cached(("mats", h, w, like.device, like.dtype), make)

    # -- blur + decimation (full FFT: the prox needs the s x s spectral blocks) ----------
    def _otf(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        cdtype = like.dtype
        return self._cached(("otf", h, w, like.device, cdtype),
                            lambda: psf2otf(self._k, h, w, like.device, cdtype))

    def _blocks_mean(self, f: torch.Tensor) -> torch.Tensor:
        """(..., H, W) spectrum -> (..., H/s, W/s): mean over its s x s distinct blocks (the
        spectrum of s-fold decimation)."""
        s = self.scale
        *b, h, w = f.shape
        return f.reshape(*b, s, h // s, s, w // s).mean(dim=(-4, -2))

    def _upsample_zeros(self, y: torch.Tensor) -> torch.Tensor:
        s = self.scale
        out = y.new_zeros(*y.shape[:-2], y.shape[-2] * s, y.shape[-1] * s)
        out[..., ::s, ::s] = y
        return out

    # -- operator -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_4d(x)
        check_divisible(x.shape, self.scale, f"sr x{self.scale}")
        h, w = x.shape[-2:]
        if self.mode == "blur_decimate":
            k = self._otf(h, w, x)
            return torch.fft.ifft2(torch.fft.fft2(x) * k).real[..., ::self.scale, ::self.scale]
        wh, _, _, _, ww, _, _, _ = self._mats(h, w, x)
        return wh @ x @ ww.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        check_4d(y, "y")
        h, w = y.shape[-2] * self.scale, y.shape[-1] * self.scale
        if self.mode == "blur_decimate":
            k = self._otf(h, w, y)
            return torch.fft.ifft2(torch.fft.fft2(self._upsample_zeros(y)) * k.conj()).real
        wh, _, _, _, ww, _, _, _ = self._mats(h, w, y)
        return wh.T @ y @ ww

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Separable: Wh^+ y (Ww^+)^T (pinv of a Kronecker product). blur_decimate:
        A^T (A A^T)^-1 y, A A^T diagonal in Fourier with entries mean_blocks(|K|^2)."""
        check_4d(y, "y")
        h, w = y.shape[-2] * self.scale, y.shape[-1] * self.scale
        if self.mode == "blur_decimate":
            k = self._otf(h, w, y)
            d = self._blocks_mean(k.abs() ** 2)
            inv = torch.where(d > PINV_TOL**2, 1 / d.clamp(min=PINV_TOL**2), torch.zeros_like(d))
            return self.adjoint(torch.fft.ifft2(torch.fft.fft2(y) * inv).real)
        _, ph, _, _, _, pw, _, _ = self._mats(h, w, y)
        return ph @ y @ pw.T

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """(A^T A + alpha I)^-1 (A^T y + alpha z), alpha = rho sigma_n^2. Separable modes: in the
        eigenbasis of Wh^T Wh (x) Ww^T Ww. blur_decimate: Zhao et al. 2016, Eq. (a closed form
        via Woodbury; ALGORITHMS.md)."""
        check_4d(z, "z")
        alpha = rho_tensor(rho, z) * self.prox_sigma2
        h, w = z.shape[-2:]
        r = self.adjoint(y) + alpha * z
        if self.mode == "blur_decimate":
            k = self._otf(h, w, z)
            d = torch.fft.fft2(r)
            frac = self._blocks_mean(k * d) / (self._blocks_mean(k.abs() ** 2) + alpha)
            x = (d - k.conj() * frac.repeat(1, 1, self.scale, self.scale)) / alpha
            return torch.fft.ifft2(x).real
        _, _, lh, uh, _, _, lw, uw = self._mats(h, w, z)
        c = uh.T @ r @ uw
        c = c / (lh[:, None] * lw[None, :] + alpha)
        return uh @ c @ uw.T
