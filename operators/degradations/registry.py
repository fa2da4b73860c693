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


def _split(spec: dict[str, Any]) -> tuple[type[Degradation], dict[str, Any], Noise]:
    """Spec dict -> (class, operator params, Noise), with clear errors for bad names/keys."""
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
    return cls, params, Noise(sigma=float(sigma), peak=None if peak is None else float(peak))


def build_degradation(spec: dict[str, Any]) -> Degradation:
    """``{"name": "sr", "scale": 4, "noise_sigma": 0.01}`` -> the operator; inverse of ``spec()``."""
    cls, params, noise = _split(spec)
    return cls.from_params(**params, noise=noise)


def sample_degradation(name: str, generator: torch.Generator, shape: tuple[int, ...] | None = None,
                       **options: Any) -> Degradation:
    """An operator with its random parameters (blur kernel, mask, chain) drawn from ``generator``.

    ``options`` are spec keys fixed by the caller; a family's ``sample`` classmethod (if any)
    draws the rest; ``shape`` (..., H, W) binds parameters that depend on the image size
    (inpainting masks); without it those are drawn at ``bind``."""
    cls, params, noise = _split({"name": name, **options})
    sampler = getattr(cls, "sample", None)
    op = sampler(generator, noise=noise, **params) if sampler is not None else cls.from_params(**params, noise=noise)
    return op if shape is None else op.bind(tuple(shape), generator)
