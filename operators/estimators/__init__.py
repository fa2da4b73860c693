"""Learned direct estimators x = f(y) for one known operator: where a solver starts.

A solver spec's ``init: {name: imdn, weights: PATH}`` replaces the operator's cheap initial
estimate (bicubic for SR) by a pretrained regressor's; the solver then refines from it with the
prior and the operator's exact data step (presets of the ``refine`` family start the schedule at
the estimator's error level, :attr:`Estimator.init_sigma`). ``split_init`` takes the key off a
solver spec; ``with_estimate`` wraps a row's operator. An operator the estimator was not trained
for is refused with a message naming the key.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from operators.priors.paths import shared_weights

KEY = "init"


@dataclass(frozen=True)
class Estimator:
    """A pretrained network for one operator. ``init_sigma``: the level a ``refine`` schedule
    starts at (about the RMS detail the estimate misses that the prior can still supply)."""

    name: str
    weights: str
    device: str = "cpu"

    def check(self, degradation: Any) -> None:
        """Raise ValueError naming ``init`` when ``degradation`` is not the operator it learnt."""
        want = ESTIMATORS[self.name]["operator"]
        got = {k: getattr(degradation, k, None) for k in want}
        if getattr(degradation, "name", None) != "sr" or got != want:
            raise ValueError(
                f"init: {self.name} estimates x from {want['scale']}x MATLAB-bicubic super-resolution "
                f"only (sr, mode bicubic, scale {want['scale']}); this row's degradation is "
                f"{degradation.spec() if hasattr(degradation, 'spec') else degradation!r}")

    @property
    def init_sigma(self) -> float:
        return float(ESTIMATORS[self.name]["init_sigma"])

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """y: (B, 3, h, w) in [0, 1] -> x (B, 3, s h, s w), clamped; grey input as R = G = B."""
        net = _network(self.name, self.weights, self.device)
        c = y.shape[1]
        with torch.no_grad():
            x = net(y.clamp(0, 1).expand(-1, 3, -1, -1).to(self.device)).to(y.device, y.dtype)
        x = x if c == 3 else x.mean(dim=1, keepdim=True)
        return x.clamp(0, 1)


def _load_imdn(path: str):
    from operators.estimators.imdn import load_imdn

    return load_imdn(path)


# name -> loader, default weights (in ../shared/data/weights), the operator it was trained on,
# and the start level of refine presets (chosen on BSDS400 training crops; benchmarks/RESULTS.md).
ESTIMATORS: dict[str, dict[str, Any]] = {
    "imdn": {"load": _load_imdn, "weights": "IMDN_x4.pth",
             "operator": {"scale": 4, "mode": "bicubic"}, "init_sigma": 0.02},
}


@functools.lru_cache(maxsize=4)
def _network(name: str, weights: str, device: str) -> torch.nn.Module:
    return ESTIMATORS[name]["load"](weights).to(device)


def build_estimator(spec: dict | None, device: str = "cpu") -> Estimator | None:
    """``{name, weights}`` -> an :class:`Estimator` (weights loaded now, so a bad path fails at
    start-up); None -> None. Unknown names and keys raise, naming the valid ones."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"init must be a mapping with a name ({', '.join(ESTIMATORS)}), got {spec!r}")
    spec = dict(spec)
    name = spec.pop("name")
    if name not in ESTIMATORS:
        raise ValueError(f"unknown init estimator {name!r}; valid: {', '.join(ESTIMATORS)}")
    weights = spec.pop("weights", None) or str(shared_weights(ESTIMATORS[name]["weights"]))
    if spec:
        raise ValueError(f"unknown key(s) {sorted(spec)} in init: {name}; valid keys: name, weights")
    est = Estimator(name, str(Path(weights)), str(device))
    _network(est.name, est.weights, est.device)
    return est


def split_init(spec: dict) -> tuple[dict | None, dict]:
    """(the ``init`` mapping of a solver spec or None, the spec without it)."""
    rest = {k: v for k, v in spec.items() if k != KEY}
    return spec.get(KEY), rest


__all__ = ["ESTIMATORS", "Estimator", "build_estimator", "split_init"]
