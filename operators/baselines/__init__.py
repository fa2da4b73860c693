"""Restoration baselines, one file each, registered by name: classical methods, and the learned
regressors named in :data:`LEARNED` (reports keep those apart from the classical ones).

Every baseline is ``baseline_<name>(y, degradation, *, config=None) -> x`` on (B, C, h, w)
tensors in [0, 1] (x: (B, C, H, W), clamped), with a frozen config dataclass
(``baseline_config(name, ...)``) and the degradation names it applies to
(``baseline_applies``). No NFE, no randomness: the same y gives the same x.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from operators.baselines import bicubic as _bicubic
from operators.baselines import bm3d as _bm3d
from operators.baselines import imdn as _imdn
from operators.baselines import pinv as _pinv
from operators.baselines import tv as _tv
from operators.baselines import wiener as _wiener
from operators.baselines.bicubic import BicubicConfig, baseline_bicubic
from operators.baselines.bm3d import BM3DConfig, baseline_bm3d
from operators.baselines.imdn import IMDNConfig, baseline_imdn
from operators.baselines.pinv import PinvConfig, baseline_pinv
from operators.baselines.tv import TVConfig, baseline_tv
from operators.baselines.wiener import WienerConfig, baseline_wiener
from operators.degradations.base import Degradation
from operators.registry import Registry

Baseline = Callable[..., torch.Tensor]

BASELINES: Registry[Baseline] = Registry("baseline")
CONFIGS: dict[str, type] = {}
APPLIES: dict[str, tuple[str, ...]] = {}
LEARNED = ("imdn",)  # pretrained networks, not classical methods

for _name, _fn, _cfg, _mod in [
    ("pinv", baseline_pinv, PinvConfig, _pinv),
    ("bm3d", baseline_bm3d, BM3DConfig, _bm3d),
    ("tv", baseline_tv, TVConfig, _tv),
    ("wiener", baseline_wiener, WienerConfig, _wiener),
    ("bicubic", baseline_bicubic, BicubicConfig, _bicubic),
    ("imdn", baseline_imdn, IMDNConfig, _imdn),
]:
    BASELINES.register(_name, _fn)
    CONFIGS[_name] = _cfg
    APPLIES[_name] = _mod.APPLIES


def get_baseline(name: str) -> Baseline:
    """The baseline function registered as ``name`` (an error lists the valid names)."""
    return BASELINES.get(name)


def baseline_config(name: str, **overrides: Any) -> Any:
    """The baseline's frozen config with ``overrides``; unknown keys raise, naming the valid ones."""
    BASELINES.get(name)
    cls = CONFIGS[name]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(map(repr, unknown))} for baseline {name!r}; "
                         f"valid keys: {', '.join(valid)}")
    return cls(**overrides)


def baseline_applies(name: str, degradation: Degradation | str) -> bool:
    """Whether baseline ``name`` handles a degradation (an operator or its registry name)."""
    deg = degradation if isinstance(degradation, str) else degradation.name
    BASELINES.get(name)
    return deg in APPLIES[name]


__all__ = [
    "APPLIES", "BASELINES", "BicubicConfig", "BM3DConfig", "CONFIGS", "IMDNConfig", "LEARNED", "PinvConfig", "TVConfig", "WienerConfig", "baseline_applies",
    "baseline_bicubic", "baseline_bm3d", "baseline_config", "baseline_imdn", "baseline_pinv", "baseline_tv", "baseline_wiener", "get_baseline",
]
