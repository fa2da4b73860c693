"""A chain of degradations A = A_n o ... o A_1; noise only at the end of the chain."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch

from operators.degradations.base import Degradation, Noise


@dataclass(frozen=True, eq=False)
class Compose(Degradation):
    """``ops`` applied first to last. Linear iff every op is (read ``op.linear`` on the
    instance); the adjoint is the reversed chain of adjoints. ``prox`` and ``pinv`` have no
    closed form in general: use ``operators.degradations.cg.cg_prox``."""

    name: ClassVar[str] = "compose"
    ops: tuple[Degradation, ...] = ()
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        if not self.ops:
            raise ValueError("compose needs at least one op")
        for op in self.ops:
            if not isinstance(op, Degradation):
                raise TypeError(f"compose ops must be Degradation objects, got {type(op).__name__}")
            if op.noise.sigma > 0 or op.noise.peak is not None:
                raise ValueError(f"compose: noise goes at the end of the chain (on the compose itself), "
                                 f"but inner op {op.name!r} has {op.noise}")

    @property
    def linear(self) -> bool:  # type: ignore[override]
        return all(op.linear for op in self.ops)

    @property
    def scale(self) -> int:
        """The chain's total downscale: the product of its ops' ``scale`` (1 for ops without one)."""
        total = 1
        for op in self.ops:
            total *= int(getattr(op, "scale", 1) or 1)
        return total

    def params(self) -> dict[str, Any]:
        specs = []
        for op in self.ops:
            s = op.spec()
            s.pop("noise_sigma", None)
            specs.append(s)
        return {"ops": specs}

    @classmethod
    def from_params(cls, **p: Any) -> "Compose":
        from operators.degradations.registry import build_degradation

        ops = tuple(o if isinstance(o, Degradation) else build_degradation(o) for o in p.pop("ops", ()))
        return cls(ops=ops, **p)

    def bind(self, shape: tuple[int, ...], generator: torch.Generator | None) -> "Compose":
        bound, s = [], tuple(shape)
        for op in self.ops:
            b = op.bind(s, generator)
            bound.append(b)
            s = b.output_shape(s)
        if all(a is b for a, b in zip(bound, self.ops)):
            return self
        return Compose(ops=tuple(bound), noise=self.noise)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for op in self.ops:
            shape = op.output_shape(shape)
        return tuple(shape)

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for op in reversed(self.ops):
            shape = op.input_shape(shape)
        return tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op.forward(x)
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if not self.linear:
            raise NotImplementedError("compose: a chain with a non-linear op has no adjoint")
        for op in reversed(self.ops):
            y = op.adjoint(y)
        return y

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        if len(self.ops) == 1:
            return self.ops[0].pinv(y)
        raise NotImplementedError("compose: no closed-form pseudo-inverse for a chain")

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        if len(self.ops) == 1:
            return replace(self.ops[0], noise=self.noise).prox(z, y, rho)
        raise NotImplementedError("compose: no closed-form prox; use operators.degradations.cg.cg_prox")
