"""Windows of frames inside a segment, and the blending that hides their seams in time.

A segment's frames are cut into shots at hard scene cuts; each shot into windows of W frames
overlapping by O (with O > 0 the last window of a shot is moved back so it is full,
overlapping more; with O = 0, frames restored independently, it is just shorter).
A window never crosses a cut, so nothing couples two shots. Frames two windows share are
blended with a linear ramp from the earlier window to the later one; the same ramp joins
segments (:func:`blend_weights`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Window:
    start: int     # first frame (segment-local index)
    stop: int      # one past the last frame
    anchored: int  # leading frames the previous window of the same shot already restored
    shot: int      # index of the shot (0-based) this window belongs to


def shots(n: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """[(start, stop)] of the shots of n frames; ``cuts``: frames that begin a new shot."""
    bounds = [0] + sorted({c for c in cuts if 0 < c < n}) + [n]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def plan_windows(n: int, window: int, overlap: int, cuts: Sequence[int] = ()) -> list[Window]:
    """Windows covering frames [0, n) in order, W = ``window`` frames overlapping by ``overlap``."""
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    out: list[Window] = []
    for s, (a, b) in enumerate(shots(n, cuts)):
        start, prev_stop = a, None
        while True:
            if overlap:  # coupled windows stay full; independent frames need no redo
                start = max(a, min(start, b - window))
            stop = min(start + window, b)
            out.append(Window(start, stop, 0 if prev_stop is None else prev_stop - start, s))
            if stop >= b:
                break
            prev_stop, start = stop, stop - overlap
    return out


def blend_weights(n_overlap: int) -> np.ndarray:
    """Weights (n_overlap,) of the LATER of two restorations on the frames they share:
    (i + 1) / (n + 1), so the earlier one fades out and neither is ever used alone there."""
    return (np.arange(n_overlap, dtype=np.float32) + 1) / (n_overlap + 1)


def blend_windows(n: int, windows: Sequence[Window], restored: Sequence[np.ndarray]) -> np.ndarray:
    """(n, ...) frames from each window's restoration (``restored[k]``: (stop - start, ...)),
    blended over the frames consecutive windows share."""
    out = None
    for w, frames in zip(windows, restored):
        if out is None:
            out = np.empty((n, *frames.shape[1:]), dtype=np.float32)
        k = w.anchored
        if k:
            a = blend_weights(k).reshape(-1, *([1] * (frames.ndim - 1)))
            out[w.start: w.start + k] = (1 - a) * out[w.start: w.start + k] + a * frames[:k]
        out[w.start + k: w.stop] = frames[k:]
    if out is None:
        raise ValueError("no windows to blend")
    return out
