"""Labelled comparison grids, one layout for every job: input | restored ... | reference, each
panel under a header strip with its name and its PSNR / SSIM against the reference, and a
posterior-std panel beside a restoration that has one.

Text is drawn with Pillow's bundled default font (``ImageFont.load_default()``: nothing is
downloaded). Posterior std images are shown as grey clip(``STD_SCALE`` * std, 0, 1) (the std
averaged over colour channels), a fixed scale so images and runs compare: 0.125 and up is
white. Measured on a 64 px CBSD68 crop (embedded prior, langevin / diffpir at 8 NFE, 4
samples): median std 0.015-0.03 (denoise 25/255, x4 SR), 95th percentile 0.03-0.15 (the
top end in box-inpainting holes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from operators.media import fit_height, side_by_side

HEADER_PX = 30  # two text lines of the default font (about 12 px each) and a margin
STD_SCALE = 8.0
INK, SCORE_INK = (0, 0, 0), (40, 40, 160)


@dataclass(frozen=True)
class Panel:
    """One grid panel: ``image`` (H, W, C in {1, 3}) float in [0, 1], a ``title`` (first header
    line) and a ``caption`` (second line: scores, or "" for none)."""

    title: str
    image: np.ndarray
    caption: str = ""


def scores(psnr: float | None, ssim: float | None) -> str:
    """The caption of a scored panel, or "" when there is no reference to score against."""
    if psnr is None or ssim is None or math.isnan(psnr) or math.isnan(ssim):
        return ""
    return f"PSNR {psnr:.2f}  SSIM {ssim:.3f}"


def std_display(std: np.ndarray) -> np.ndarray:
    """A per-pixel std (H, W, C) as it is shown and written: grey, the channels' mean std,
    clip(STD_SCALE std, 0, 1), as (H, W, 3)."""
    grey = np.asarray(std, dtype=np.float32).mean(axis=2, keepdims=True)
    return np.repeat(np.clip(grey * STD_SCALE, 0, 1), 3, axis=2)


def std_panel(shown: np.ndarray, mean_std: float, title: str = "posterior std") -> Panel:
    """The std panel from its displayed image (:func:`std_display`) and the mean std."""
    return Panel(f"{title} (x{STD_SCALE:g})", shown, f"mean std {mean_std:.4f}")


def estimate_title(title: str, samples: int, estimate: str) -> str:
    """A restored panel's title saying which estimate it shows ("single", "mean", "sample")."""
    if estimate == "mean":
        return f"{title} (mean of {samples})"
    return f"{title} (1 of {samples} samples)" if estimate == "sample" else title


def restoration_panels(lq: np.ndarray, restored: np.ndarray, hq: np.ndarray | None,
                       lq_scores: tuple[float, float], restored_scores: tuple[float, float],
                       std: np.ndarray | None = None, restored_title: str = "restored") -> list[Panel]:
    """input | restored [| posterior std] [| reference] for one restoration (std: the raw
    per-pixel std, (H, W, C))."""
    panels = [Panel("input", lq, scores(*lq_scores)), Panel(restored_title, restored, scores(*restored_scores))]
    if std is not None:
        panels.append(std_panel(std_display(std), float(np.mean(std))))
    if hq is not None:
        panels.append(Panel("reference", hq))
    return panels


def _header(panel: Panel, width: int, font) -> np.ndarray:
    """A white (HEADER_PX, width, 3) uint8 strip with the panel's two text lines (clipped)."""
    strip = Image.new("RGB", (width, HEADER_PX), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    draw.text((3, 2), panel.title, fill=INK, font=font)
    if panel.caption:
        draw.text((3, 16), panel.caption, fill=SCORE_INK, font=font)
    return np.asarray(strip)


def labelled_grid(panels: list[Panel], height: int = 160, gap: int = 4) -> np.ndarray:
    """(HEADER_PX + height, W, 3) float in [0, 1]: each panel resized to ``height`` (aspect kept)
    under its header strip, left to right on white, ``gap`` px apart."""
    font = ImageFont.load_default()
    columns = []
    for p in panels:
        img = np.asarray(p.image, dtype=np.float32)
        img = np.repeat(img, 3, axis=2) if img.ndim == 3 and img.shape[2] == 1 else img
        tile = fit_height(img, height)
        columns.append(np.concatenate([_header(p, tile.shape[1], font), tile]).astype(np.float32) / 255)
    return side_by_side(columns, height=HEADER_PX + height, gap=gap)  # same height: no resampling
