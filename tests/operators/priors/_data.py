"""Real data for the real-weights tests: ../shared/data beside the checkout, read in place."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data and weights not found at {SHARED_DATA} (../shared/data)"
)


def load_image(path: Path, mode: str = "RGB") -> torch.Tensor:
    """(1, C, H, W) float32 in [0, 1]."""
    a = np.array(Image.open(path).convert(mode), dtype=np.float32) / 255.0
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))
