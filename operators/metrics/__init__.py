"""Image and video metrics: full-reference (PSNR, SSIM, MS-SSIM, LPIPS), no-reference (NIQE), video flicker.

Every image metric takes float32 (B, C, H, W) in [0, 1] and returns per-image values (B,).
``METRICS`` holds the full-reference callables ``f(x, ref)``, ``NR_METRICS`` the
no-reference ones ``f(x)``; :func:`compute_metrics` evaluates a list of names from either.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch

from operators.metrics.flicker import flicker, flicker_nr
from operators.metrics.lpips import LPIPS, LPIPSMetric
from operators.metrics.niqe import NIQEModel, niqe
from operators.metrics.psnr import psnr, psnr_y, shave_border
from operators.metrics.ssim import ms_ssim, ssim, ssim_y
from operators.registry import Registry

Metric = Callable[..., torch.Tensor]

METRICS: Registry[Metric] = Registry("metric")
METRICS.register("psnr", psnr)
METRICS.register("psnr_y", psnr_y)
METRICS.register("ssim", ssim)
METRICS.register("ssim_y", ssim_y)
METRICS.register("ms_ssim", ms_ssim)
METRICS.register("lpips", LPIPSMetric("alex"))  # paths from RESTORAY_LPIPS_LIN / _BACKBONE

NR_METRICS: Registry[Metric] = Registry("no-reference metric")
NR_METRICS.register("niqe", niqe)


def compute_metrics(
    x: torch.Tensor,
    ref: torch.Tensor | None,
    names: Iterable[str],
    crop_border: int = 0,
    notes: dict[str, str] | None = None,
    overrides: Mapping[str, Metric] | None = None,
) -> dict[str, torch.Tensor]:
    """{name: (B,) values} for x against ref (x, ref: (B, C, H, W)), after a common border crop.

    A metric that cannot be computed (LPIPS without weights) gives NaN, and its reason is
    written to ``notes[name]`` when a dict is passed. ``overrides`` replaces registry
    entries by configured callables (e.g. an LPIPSMetric with weight paths).
    """
    x = shave_border(x, crop_border)
    ref = None if ref is None else shave_border(ref, crop_border)
    out: dict[str, torch.Tensor] = {}
    for name in names:
        if overrides and name in overrides:
            fn, full_ref = overrides[name], name not in NR_METRICS
        elif name in NR_METRICS:
            fn, full_ref = NR_METRICS.get(name), False
        else:
            fn, full_ref = METRICS.get(name), True
        if full_ref and ref is None:
            raise ValueError(f"metric {name!r} needs a reference image")
        out[name] = fn(x, ref) if full_ref else fn(x)
        reason = getattr(fn, "reason", None)
        if notes is not None and reason:
            notes[name] = reason
    return out


__all__ = [
    "LPIPS", "LPIPSMetric", "METRICS", "NIQEModel", "NR_METRICS", "compute_metrics", "flicker", "flicker_nr",
    "ms_ssim", "niqe", "psnr", "psnr_y", "ssim", "ssim_y",
]
