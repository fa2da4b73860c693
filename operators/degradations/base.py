"""The degradation (forward model) contract shared by synthesis and every solver.

Tensors are float32 NCHW in [0, 1]. A degradation is immutable: its parameters come in
through the constructor, ``spec()`` gives them back as a JSON-able dict, and
``build_degradation(spec)`` rebuilds an equal operator. Noise is separate from the
noiseless forward map and always takes an explicit ``torch.Generator``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar

import torch

PROX_SIGMA_FLOOR = 1e-3


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
            # drawn on the generator's device (CPU generators give the same draws for CUDA y)
            dev = generator.device if generator is not None else y.device
            lam = (y.clamp(min=0) * self.peak).double().to(dev)
            y = (torch.poisson(lam, generator=generator) / self.peak).to(device=y.device, dtype=y.dtype)
        if self.sigma > 0:
            dev = generator.device if generator is not None else y.device
            eps = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=dev).to(y.device)
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

    Subclasses are declared ``@dataclass(frozen=True, eq=False)``: equality and hashing come
    from ``spec()`` here, so numpy-array fields (kernels, masks) compare by value.
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
        """argmin_x ||y - A x||^2 / (2 sigma_n^2) + rho / 2 ||x - z||^2, in closed form.

        ``rho``: a float or a (B,) tensor, > 0; sigma_n^2 is ``prox_sigma2`` (floored)."""
        raise NotImplementedError(f"degradation {self.name!r} has no closed-form prox")

    @property
    def exact_prox(self) -> bool:
        """Whether ``prox`` is the exact data step: linear operators that implement it, and
        operators whose data step is a projection (noiseless JPEG: its constraint set)."""
        return bool(self.linear) and type(self).prox is not Degradation.prox

    def init_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """A cheap image-space estimate from y: pinv(y) where it exists, else y resized
        (bicubic) to ``input_shape``, or y itself when the shapes agree. Clamped to [0, 1]
        unless the solvers model its error as white noise (``init_sigma`` > 0: denoising's y):
        clipping would bias that noise where the image is dark or bright, and a denoiser
        told sigma_y loses ~0.3-0.5 dB on such pixels (FFDNet on CBSD68 crops, sigma 25)."""
        try:
            est = self.pinv(y)
        except NotImplementedError:
            size = tuple(self.input_shape(tuple(y.shape)))[-2:]
            est = y if tuple(y.shape[-2:]) == size else torch.nn.functional.interpolate(
                y, size=size, mode="bicubic", align_corners=False)
        return est if self.init_sigma > 0 else est.clamp(0, 1)

    def bind(self, shape: tuple[int, ...], generator: torch.Generator | None) -> "Degradation":
        """The concrete operator for images of ``shape`` (..., H, W): operators with parameters
        still to draw (an inpainting mask, a motion kernel, a random chain) sample them from
        ``generator`` and return a new operator; concrete ones return ``self``."""
        return self

    @property
    def prox_sigma2(self) -> float:
        """sigma_n^2 used by ``prox``, floored at ``PROX_SIGMA_FLOOR**2`` so noiseless problems
        stay well-posed."""
        return max(self.sigma_n, PROX_SIGMA_FLOOR) ** 2

    @property
    def sigma_n(self) -> float:
        return self.noise.effective_sigma

    @property
    def init_sigma(self) -> float:
        """Std of the white noise that ``init_estimate(y)`` carries (0: its error is not white
        noise; denoising overrides it with sigma_n, since its estimate is y)."""
        return 0.0

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

    @classmethod
    def from_params(cls, **params: Any) -> "Degradation":
        """Inverse of ``params()``: JSON forms (lists, packed masks, nested specs) to fields."""
        return cls(**params)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Degradation":
        """Operators hold numpy parameters and build their tensors lazily on the input's
        device and dtype (cached per device/dtype), so this returns ``self``."""
        return self

    def _cached(self, key: tuple, make: Callable[[], Any]) -> Any:
        """Per-instance cache of derived tensors (kernels' spectra, weight matrices), keyed by
        e.g. (H, W, device, dtype); kept small and never pickled."""
        cache = self.__dict__.get("_tensor_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_tensor_cache", cache)
        if key not in cache:
            if len(cache) >= 16:
                cache.pop(next(iter(cache)))
            cache[key] = make()
        return cache[key]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_tensor_cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # Equality and hashing go through the spec, so array-valued fields compare by value.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Degradation):
            return NotImplemented
        return json.dumps(self.spec(), sort_keys=True) == json.dumps(other.spec(), sort_keys=True)

    def __hash__(self) -> int:
        return hash(json.dumps(self.spec(), sort_keys=True))
