"""Inpainting: y = M * x with a (H, W) mask M (True = observed), shared over B and C."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch

from operators.degradations._util import check_4d, rho_tensor
from operators.degradations.base import Degradation, Noise
from operators.degradations.fill import fill_holes
from operators.degradations.masks import MaskKind, pack_mask, sample_mask, unpack_mask


@dataclass(frozen=True, eq=False)
class Inpaint(Degradation):
    """``kind``/``fraction`` say how a mask is drawn (``bind``); ``mask`` is the drawn one.
    x, y: (B, C, H, W); missing pixels of y are 0."""

    name: ClassVar[str] = "inpaint"
    linear: ClassVar[bool] = True
    kind: MaskKind | str = "random"
    fraction: float | None = None
    mask: np.ndarray | None = None
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if self.mask is not None:
            m = np.asarray(self.mask, dtype=bool)
            if m.ndim != 2:
                raise ValueError(f"inpaint mask must be (H, W), got shape {m.shape}")
            object.__setattr__(self, "mask", m)

    # -- sampling / spec ----------------------------------------------------------------
    def bind(self, shape: tuple[int, ...], generator: torch.Generator | None) -> "Inpaint":
        if self.mask is not None:
            return self
        if generator is None:
            raise ValueError("inpaint: sampling a mask needs a torch.Generator")
        return replace(self, mask=sample_mask(self.kind, (shape[-2], shape[-1]), generator, self.fraction))

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "fraction": self.fraction,
                "mask": None if self.mask is None else pack_mask(self.mask)}

    @classmethod
    def from_params(cls, **p: Any) -> "Inpaint":
        m = p.get("mask")
        if isinstance(m, dict):
            p["mask"] = unpack_mask(m)
        return cls(**p)

    # -- operator -----------------------------------------------------------------------
    def _m(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            raise ValueError("inpaint: no mask yet; call bind(shape, generator) or pass mask=")
        check_4d(x)
        if tuple(x.shape[-2:]) != self.mask.shape:
            raise ValueError(f"inpaint mask is {self.mask.shape}, image is {tuple(x.shape[-2:])}")
        return self._cached(("mask", x.device, x.dtype),
                            lambda: torch.as_tensor(self.mask, device=x.device).to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._m(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._m(y)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._m(y)

    def init_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """y with its holes filled by normalised convolution (:func:`fill_holes`), not zeros."""
        return fill_holes(y, self._m(y)).clamp(0, 1)

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """Elementwise (M y / s2 + rho z) / (M / s2 + rho) (ALGORITHMS.md, inpainting)."""
        m = self._m(z)
        alpha = rho_tensor(rho, z) * self.prox_sigma2
        return (m * y + alpha * z) / (m + alpha)
