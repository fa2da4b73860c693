"""Registry of degradation families, building from spec dicts, and sampling from a generator."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch

from operators.degradations.base import Degradation, Noise
from operators.registry import Registry

DEGRADATIONS: Registry[type[Degradation]] = Registry("degradation")
NOISE_KEYS = ("noise_sigma", "noise_poisson_peak")


def register(cls: type[Degradation]) -> type[Degradation]:
    DEGRADATIONS.register(cls.name, cls)
    return cls


def valid_keys(cls: type[Degradation]) -> list[str]:
    """Spec keys a family accepts besides ``name``."""
    return sorted([f.name for f in fields(cls) if f.name != "noise"] + list(NOISE_KEYS))


def build_degradation(spec: dict[str, Any]) -> Degradation:
    """``{"name": "sr", "scale": 4, "noise_sigma": 0.01}`` -> the operator; inverse of ``spec()``."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a degradation spec is a dict with a 'name' key, got {spec!r}")
    params = dict(spec)
    cls = DEGRADATIONS.get(params.pop("name"))
    unknown = sorted(set(params) - set(valid_keys(cls)))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} for degradation {cls.name!r}; "
                         f"valid keys: {', '.join(valid_keys(cls))}")
    sigma = params.pop("noise_sigma", 0.0) or 0.0
    peak = params.pop("noise_poisson_peak", None)
    return cls.from_params(**params, noise=Noise(sigma=float(sigma), peak=None if peak is None else float(peak)))


def sample_degradation(name: str, generator: torch.Generator, shape: tuple[int, ...] | None = None,
                       **options: Any) -> Degradation:
    """An operator with its random parameters (blur kernel, mask, chain) drawn from ``generator``.

    ``options`` are spec keys fixed by the caller; a family's ``sample`` classmethod (if any)
    draws the rest; ``shape`` (..., H, W) is needed where parameters depend on the image size
    (inpainting masks)."""
    cls = DEGRADATIONS.get(name)
    sampler = getattr(cls, "sample", None)
    if sampler is not None:
        op = sampler(generator, **options)
    else:
        op = build_degradation({"name": name, **options})
    if shape is None:
        return op
    return op.bind(tuple(shape), generator)
