"""Side-by-side comparison frames (input | restored | reference) and a strip of them as PNG."""
from __future__ import annotations

import numpy as np

from operators.media import encode_png


def _fit(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of (h, w, 3) to (height, width, 3): an SR input keeps its pixels."""
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    rows = np.arange(height) * h // height
    cols = np.arange(width) * w // width
    return frame[rows][:, cols]


def comparison_frame(lq: np.ndarray, restored: np.ndarray, ref: np.ndarray | None = None,
                     gap: int = 4) -> np.ndarray:
    """(H, 2W or 3W + gaps, 3) float32: the input (resized to the restored size), the
    restoration and, when given, the reference, separated by white ``gap``-pixel bars."""
    h, w = restored.shape[:2]
    panels = [_fit(lq, h, w), restored] + ([ref] if ref is not None and ref.shape == restored.shape else [])
    bar = np.ones((h, gap, 3), dtype=np.float32)
    parts = []
    for p in panels:
        parts += [np.asarray(p, dtype=np.float32), bar]
    return np.concatenate(parts[:-1], axis=1)


def frame_strip(frames: list[np.ndarray], gap: int = 4) -> bytes:
    """PNG bytes of comparison frames stacked vertically with white bars between them."""
    if not frames:
        raise ValueError("no frames for the strip")
    bar = np.ones((gap, frames[0].shape[1], 3), dtype=np.float32)
    parts = []
    for f in frames:
        parts += [f, bar]
    return encode_png(np.concatenate(parts[:-1], axis=0))
