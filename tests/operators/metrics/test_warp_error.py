"""Warp error: zero for a static video, the flicker amplitude for a flickering one, near zero
for a clean translating clip, and the reference's own floor reported beside."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from operators.metrics.warp_error import WarpError, compensation, warp_error, warp_error_pair

T, H, W = 6, 64, 80


def _texture() -> torch.Tensor:
    """(3, 120, 140) smooth random colour texture in [0, 1]."""
    a = cv2.GaussianBlur(np.random.default_rng(0).random((120, 140, 3)).astype(np.float32), (0, 0), 2)
    return torch.from_numpy((a - a.min()) / (a.max() - a.min())).permute(2, 0, 1)


def _static() -> torch.Tensor:
    return _texture()[:, :H, :W].expand(T, 3, H, W).clone()


def _translating() -> torch.Tensor:
    """Crops moving by (3, 2) px per frame: the content shifts with no occlusion inside."""
    big = _texture()
    return torch.stack([big[:, 2 * t : 2 * t + H, 3 * t : 3 * t + W] for t in range(T)])


def test_static_video_scores_zero_with_numpy_or_torch():
    v = _static()
    assert warp_error(v) == 0.0 and warp_error(v.numpy()) == 0.0 and warp_error(v, v) == 0.0


def test_flicker_scores_its_amplitude_against_the_reference_flow():
    still = _static()
    d = 0.125
    flicker = still + d * (torch.arange(T) % 2).view(T, 1, 1, 1)
    assert warp_error(flicker, still) == pytest.approx(d, abs=1e-6)  # zero flow: |v_t - v_{t+1}| = d
    assert warp_error(flicker) > 0.09  # flow from the flickering video itself: still about d
    assert warp_error_pair(flicker, still) == WarpError(video=pytest.approx(d, abs=1e-6), reference=0.0)


def test_reference_flow_compensates_a_translating_clip():
    clip = _translating()
    naive = float((clip[1:] - clip[:-1]).abs().mean())
    assert warp_error(clip) < 0.003 < 0.05 < naive
    for flow, mask in compensation(clip):
        np.testing.assert_allclose(flow[mask].mean(0), [-3, -2], atol=0.05)  # frame t's content moves up-left
        assert 0.8 < mask.mean() < 1 and not mask[:, :3].any() and not mask[:2].any()  # it leaves the frame there
    noisy = (clip + 0.05 * torch.randn(clip.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    pair = warp_error_pair(noisy, clip)
    assert pair.reference == pytest.approx(warp_error(clip)) and pair.video > 0.04 > 10 * pair.reference
    assert pair.video == pytest.approx(warp_error(noisy, clip))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="T >= 2"):
        warp_error(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        warp_error(torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 10))
    assert warp_error(_static()[:, :1]) == 0.0  # grey video
