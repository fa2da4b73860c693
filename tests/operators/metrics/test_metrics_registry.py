"""The metric registry and compute_metrics."""
from __future__ import annotations

import pytest
import torch

from operators.metrics import METRICS, NR_METRICS, compute_metrics, psnr, ssim
from operators.registry import UnknownNameError


def test_registry_names():
    assert {"psnr", "psnr_y", "ssim", "ssim_y", "ms_ssim", "lpips"} <= set(METRICS.names())
    assert "niqe" in NR_METRICS
    with pytest.raises(UnknownNameError, match="valid choices: .*psnr"):
        compute_metrics(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), ["psnrr"])


def test_compute_metrics_shapes_and_crop():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 40, 48, generator=g)
    x = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    out = compute_metrics(x, ref, ["psnr", "psnr_y", "ssim", "ssim_y", "ms_ssim"], crop_border=2)
    assert all(v.shape == (2,) and v.isfinite().all() for v in out.values())
    assert torch.equal(out["psnr"], psnr(x, ref, crop_border=2))
    assert torch.equal(out["ssim"], ssim(x, ref, crop_border=2))


def test_full_reference_needs_reference():
    with pytest.raises(ValueError, match="needs a reference"):
        compute_metrics(torch.rand(1, 3, 16, 16), None, ["psnr"])
