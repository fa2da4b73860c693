"""Temporal flicker: zero when static, exact values for alternating frames."""
from __future__ import annotations

import pytest
import torch

from operators.metrics.flicker import flicker, flicker_nr, temporal_change


def _static(t=6):
    frame = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8
    return frame.expand(t, 3, 16, 16).clone()


def test_static_video_has_no_flicker():
    v = _static()
    assert flicker(v, v).item() == 0.0 and flicker_nr(v).item() == 0.0 and flicker(v).item() == 0.0


def test_alternating_frames_flicker_exactly():
    v = _static()
    d = 0.125  # exact in binary
    flick = v + d * (torch.arange(6) % 2).view(6, 1, 1, 1)
    assert torch.allclose(flicker(flick, v), torch.tensor(d))  # |change| = d every step, reference 0
    assert torch.allclose(flicker_nr(flick), torch.tensor(2 * d))  # second difference is +-2d
    assert flicker_nr(flick) > flicker_nr(v)


def test_steady_fade_is_not_flicker():
    v = _static() + 0.02 * torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1)
    assert flicker_nr(v).item() < 1e-6
    assert abs(temporal_change(v).item() - 0.02) < 1e-6


def test_batched_videos_and_errors():
    a = torch.stack([_static(), _static() + 0.1 * (torch.arange(6) % 2).view(6, 1, 1, 1)])
    out = flicker_nr(a)
    assert out.shape == (2,) and out[0] == 0 and out[1] > 0
    with pytest.raises(ValueError, match="T >= 3"):
        flicker_nr(_static(2))
    with pytest.raises(ValueError, match="shapes differ"):
        flicker(_static(4), _static(5))
