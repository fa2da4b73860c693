"""Inputs for the job tests: a folder of valid odd-format images and broken files."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _save(path: Path, img: Image.Image, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)


def make_valid_images(root: Path, seed: int = 0) -> list[str]:
    """Valid inputs in odd formats and sizes; returns their relative paths."""
    rng = np.random.default_rng(seed)
    smooth = lambda h, w, c: (np.clip(np.cumsum(rng.normal(0, 6, (h, w, c)), axis=1) % 256, 0, 255)).astype(np.uint8)
    _save(root / "rgb.png", Image.fromarray(smooth(40, 48, 3)))
    _save(root / "sub" / "grey_odd.png", Image.fromarray(smooth(37, 29, 1)[..., 0]))
    rgba = np.concatenate([smooth(32, 32, 3), np.full((32, 32, 1), 200, np.uint8)], axis=2)
    _save(root / "rgba.png", Image.fromarray(rgba))
    _save(root / "deep16.png", Image.fromarray((smooth(24, 36, 1)[..., 0].astype(np.uint16) * 257)))
    _save(root / "cmyk.jpg", Image.fromarray(smooth(32, 40, 3)).convert("CMYK"), "JPEG")
    return ["cmyk.jpg", "deep16.png", "rgb.png", "rgba.png", "sub/grey_odd.png"]


def make_broken_files(root: Path) -> list[str]:
    """Files that must become error rows: corrupt, truncated, empty, not an image, too large."""
    root.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "corrupt.png").write_bytes(png[:16] + bytes(range(256)) * 4)
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_bytes(b"this is a text file, not an image\n")
    big = io.BytesIO()
    Image.new("L", (1200, 1000)).save(big, format="PNG")
    (root / "bomb.png").write_bytes(big.getvalue())
    return ["bomb.png", "corrupt.png", "empty.png", "notes.png", "truncated.png"]


@pytest.fixture
def image_folder(tmp_path) -> tuple[Path, list[str], list[str]]:
    root = tmp_path / "in"
    return root, make_valid_images(root), make_broken_files(root)
