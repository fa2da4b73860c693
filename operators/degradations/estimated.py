"""An operator whose initial estimate comes from a learned estimator (a solver's ``init:``).

:class:`WithEstimate` is the row's operator in every respect (forward, adjoint, prox, noise,
spec, equality) except two: ``init_estimate(y)`` is the estimator's output, and ``init_sigma``
is the estimator's error level, so a schedule started at ``sigma_max: measurement`` refines the
estimate instead of regenerating detail from noise (``refine`` presets). Solvers need no change:
they all start from ``degradation.init_estimate(y)``.
"""
from __future__ import annotations

from typing import Any


class WithEstimate:
    """``degradation`` with ``estimator`` as its initial estimate (see the module docstring)."""

    def __init__(self, degradation: Any, estimator: Any):
        estimator.check(degradation)
        self.__dict__["_op"] = degradation
        self.__dict__["estimator"] = estimator

    def __getattr__(self, name: str) -> Any:
        if name in ("_op", "estimator"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._op, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __getstate__(self) -> dict[str, Any]:
        return {"_op": self._op, "estimator": self.estimator}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def wrapped(self) -> Any:
        """The operator itself."""
        return self._op

    @property
    def init_sigma(self) -> float:
        return max(float(self.estimator.init_sigma), float(self._op.init_sigma))

    def init_estimate(self, y):
        return self.estimator(y)

    def to(self, device: Any = None, dtype: Any = None) -> "WithEstimate":
        return WithEstimate(self._op.to(device, dtype), self.estimator)

    def bind(self, shape: tuple[int, ...], generator: Any) -> "WithEstimate":
        return WithEstimate(self._op.bind(shape, generator), self.estimator)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WithEstimate):
            return self._op == other._op and self.estimator == other.estimator
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._op, self.estimator))

    def __repr__(self) -> str:
        return f"WithEstimate({self._op!r}, init={self.estimator.name})"


def with_estimate(degradation: Any, estimator: Any | None) -> Any:
    """``degradation`` itself without an estimator, else wrapped (refused if it does not apply)."""
    return degradation if estimator is None else WithEstimate(degradation, estimator)
