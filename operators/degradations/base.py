"""The degradation (forward model) contract shared by synthesis and every solver.

Tensors are float32 NCHW in [0, 1]. A degradation is immutable: its parameters come in
through the constructor, ``spec()`` gives them back as a JSON-able dict, and
``build_degradation(spec)`` rebuilds an equal operator. Noise is separate from the
noiseless forward map and always takes an explicit ``torch.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch


@dataclass(frozen=True)
class Noise:
    """Measurement noise: Gaussian (``sigma`` in [0, 1] units), Poisson (``peak``), or none."""

    sigma: float = 0.0
    peak: float | None = None

    def __post_init__(self):
        if self.sigma < 0:
            raise ValueError(f"noise sigma must be >= 0, got {self.sigma}")
        if self.peak is not None and self.peak <= 0:
            raise ValueError(f"poisson peak must be > 0, got {self.peak}")

    def __call__(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.peak is not None:
            lam = (y.clamp(min=0) * self.peak).double()
            y = (torch.poisson(lam, generator=generator) / self.peak).to(y.dtype)
        if self.sigma > 0:
            eps = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
            y = y + self.sigma * eps
        return y

    @property
    def effective_sigma(self) -> float:
        """Gaussian-equivalent std used by solvers (Poisson at mid-grey for a Poisson model)."""
        s2 = self.sigma**2
        if self.peak is not None:
            s2 += 0.5 / self.peak
        return float(s2**0.5)


class Degradation:
    """Base class. Subclasses are frozen dataclasses with a ``noise: Noise`` field.

    - ``forward(x)``: the noiseless map A(x).
    - ``measure(x, generator)``: A(x) plus noise.
    - linear ones (``linear = True``) also give ``adjoint``, ``pinv`` and ``prox``.
    """

    name: ClassVar[str]
    linear: ClassVar[bool] = False
    noise: Noise

    # -- contract ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def measure(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.noise(self.forward(x), generator)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of ``forward(x)`` for an ``x`` of ``shape``."""
        return tuple(shape)

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the image that a measurement of ``shape`` comes from."""
        return tuple(shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"degradation {self.name!r} is non-linear: no adjoint")

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"degradation {self.name!r} has no closed-form pseudo-inverse")

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """argmin_x ||y - A x||^2 / (2 sigma_n^2) + rho / 2 ||x - z||^2, in closed form."""
        raise NotImplementedError(f"degradation {self.name!r} has no closed-form prox")

    def init_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """A cheap image-space estimate from y (pinv, or adjoint, or y itself)."""
        try:
            return self.pinv(y).clamp(0, 1)
        except NotImplementedError:
            return y.clamp(0, 1) if tuple(y.shape) == tuple(self.input_shape(tuple(y.shape))) else \
                torch.nn.functional.interpolate(y, size=self.input_shape(tuple(y.shape))[-2:], mode="bicubic").clamp(0, 1)

    @property
    def sigma_n(self) -> float:
        return self.noise.effective_sigma

    # -- spec round trip --------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Operator parameters other than noise, JSON-able. Override for tensors."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name != "noise":
                out[f.name] = getattr(self, f.name)
        return out

    def spec(self) -> dict[str, Any]:
        s = {"name": self.name, **self.params(), "noise_sigma": self.noise.sigma}
        if self.noise.peak is not None:
            s["noise_poisson_peak"] = self.noise.peak
        return s

    def to(self, device: torch.device | str) -> "Degradation":
        """Same operator with its tensors on ``device`` (default: tensors follow inputs)."""
        return self
