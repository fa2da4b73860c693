"""Window planning, seam blending and scene-cut detection."""
from __future__ import annotations

import numpy as np
import pytest

from operators.video.cuts import cut_scores, detect_cuts
from operators.video.windows import Window, blend_weights, blend_windows, plan_windows, shots


def test_windows_cover_every_frame_in_order_and_never_cross_a_cut():
    assert plan_windows(20, 8, 2) == [Window(0, 8, 0, 0), Window(6, 14, 2, 0), Window(12, 20, 2, 0)]
    # the last window is moved back to stay full: it overlaps more
    assert plan_windows(17, 8, 2) == [Window(0, 8, 0, 0), Window(6, 14, 2, 0), Window(9, 17, 5, 0)]
    assert plan_windows(5, 8, 2) == [Window(0, 5, 0, 0)]
    assert plan_windows(20, 8, 0) == [Window(0, 8, 0, 0), Window(8, 16, 0, 0), Window(16, 20, 0, 0)]
    ws = plan_windows(20, 8, 2, cuts=[5, 0, 99])
    assert ws[0] == Window(0, 5, 0, 0) and ws[1] == Window(5, 13, 0, 1)  # no anchor across the cut
    assert shots(20, [5, 12]) == [(0, 5), (5, 12), (12, 20)]
    for n, w, o, cuts in [(1, 1, 0, []), (33, 8, 3, [7, 8, 20]), (64, 16, 4, [])]:
        ws = plan_windows(n, w, o, cuts)
        covered = np.zeros(n, int)
        for win in ws:
            covered[win.start: win.stop] += 1
            assert win.stop - win.start <= w
            assert not any(win.start < c < win.stop for c in cuts)
        assert covered.min() >= 1
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10, 4, 4)


def test_blend_ramps_from_the_earlier_window_to_the_later():
    ws = plan_windows(10, 6, 2)  # [0, 6) and [4, 10): frames 4, 5 shared
    assert ws[1].anchored == 2
    out = blend_windows(10, ws, [np.zeros((6, 1), np.float32), np.ones((6, 1), np.float32)])
    w = blend_weights(2)
    assert np.allclose(out[:, 0], [0, 0, 0, 0, w[0], w[1], 1, 1, 1, 1]) and np.allclose(w, [1 / 3, 2 / 3])


def _scene(seed: int, t: int, shift: int = 2) -> np.ndarray:
    """t frames of a smooth random scene panning ``shift`` px per frame."""
    rng = np.random.default_rng(seed)
    base = rng.random((8, 12, 3)).repeat(16, 0).repeat(16, 1)
    return np.stack([np.roll(base, i * shift, axis=1) for i in range(t)]).astype(np.float32)


def test_cuts_found_between_shots_not_inside_a_noisy_pan():
    clip = np.concatenate([_scene(0, 6), _scene(1, 5)])
    noisy = np.clip(clip + np.random.default_rng(2).normal(0, 0.1, clip.shape), 0, 1).astype(np.float32)
    assert detect_cuts(clip) == [6] and detect_cuts(noisy) == [6]
    assert cut_scores(_scene(3, 4)).max() < 0.3  # a pan stays well below the 0.4 threshold
    with pytest.raises(ValueError, match="threshold"):
        detect_cuts(clip, 0)
