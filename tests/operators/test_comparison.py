"""Labelled comparison grids: one column per panel, a header strip with text above each, the
panel's pixels below it, scores and the std display scale as documented."""
from __future__ import annotations

import numpy as np

from operators.comparison import (
    HEADER_PX,
    STD_SCALE,
    Panel,
    estimate_title,
    labelled_grid,
    restoration_panels,
    scores,
    std_display,
)


def _img(h: int, w: int, value: float, c: int = 3) -> np.ndarray:
    return np.full((h, w, c), value, np.float32)


def _columns(grid: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each panel: runs of columns that are not all white below the header."""
    body = (grid[HEADER_PX:] < 1.0).any(axis=(0, 2))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], body.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_grid_has_one_labelled_column_per_panel():
    panels = restoration_panels(_img(16, 16, 0.2, c=1), _img(32, 32, 0.4), _img(32, 32, 0.6),
                                (20.0, 0.5), (28.123, 0.9), std=_img(32, 32, 0.05))
    assert [p.title for p in panels] == ["input", "restored", f"posterior std (x{STD_SCALE:g})", "reference"]
    assert panels[1].caption == "PSNR 28.12  SSIM 0.900" and panels[3].caption == ""
    grid = labelled_grid(panels, height=64, gap=4)
    assert grid.shape == (HEADER_PX + 64, 4 * 64 + 3 * 4, 3)
    cols = _columns(grid)
    assert cols == [(0, 64), (68, 132), (136, 200), (204, 268)]
    for (a, b), p in zip(cols, panels):
        header = grid[:HEADER_PX, a:b]
        ink_rows = np.flatnonzero((header < 0.5).any(axis=(1, 2)))
        assert ink_rows.size and ink_rows.min() < 14  # the title line
        assert (ink_rows.max() >= 16) == bool(p.caption)  # the scores line, when there is one
        expect = np.round(np.clip(p.image, 0, 1).mean() * 255) / 255
        assert np.allclose(grid[HEADER_PX:, a:b], expect)  # the panel's own (flat) pixels
    assert np.allclose(grid[HEADER_PX:, 136:200], 0.05 * STD_SCALE, atol=1 / 255)


def test_scores_std_display_and_estimate_titles():
    assert scores(float("nan"), 0.5) == "" and scores(None, None) == ""
    shown = std_display(np.array([[[0.0, 0.1, 0.2], [0.5, 0.5, 0.5]]]))  # (1, 2, 3): channel means 0.1, 0.5
    assert shown.shape == (1, 2, 3) and np.allclose(shown, [[[0.1 * STD_SCALE] * 3, [1.0] * 3]])
    assert estimate_title("restored", 1, "single") == "restored"
    assert estimate_title("diffpir", 4, "mean") == "diffpir (mean of 4)"
    assert estimate_title("restored", 4, "sample") == "restored (1 of 4 samples)"


def test_unscored_panels_and_aspect_ratio():
    grid = labelled_grid([Panel("a", _img(10, 20, 0.3)), Panel("b", _img(20, 10, 0.7))], height=40, gap=2)
    assert grid.shape == (HEADER_PX + 40, 80 + 2 + 20, 3)
    assert _columns(grid) == [(0, 80), (82, 102)]
