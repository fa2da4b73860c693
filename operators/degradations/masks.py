"""Inpainting masks (True = observed): random pixels, a box, free-form brush strokes; all
drawn from an explicit generator. Plus a compact JSON form (zlib + base64 of packbits)."""
from __future__ import annotations

import base64
import math
import zlib
from typing import Literal

import numpy as np
import torch

MaskKind = Literal["random", "box", "freeform"]
DEFAULT_FRACTION = {"random": 0.7, "box": 0.25, "freeform": 0.2}


def sample_mask(kind: MaskKind, shape: tuple[int, int], generator: torch.Generator,
                fraction: float | None = None) -> np.ndarray:
    """A (H, W) bool mask with about ``fraction`` of the pixels missing (False)."""
    h, w = shape
    frac = DEFAULT_FRACTION[kind] if fraction is None else float(fraction)
    if not 0 <= frac < 1:
        raise ValueError(f"missing fraction must be in [0, 1), got {frac}")
    if kind == "random":
        return (torch.rand(h, w, generator=generator, dtype=torch.float64) >= frac).numpy()
    if kind == "box":
        bh, bw = round(h * math.sqrt(frac)), round(w * math.sqrt(frac))
        top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
        mask = np.ones((h, w), dtype=bool)
        mask[top:top + bh, left:left + bw] = False
        return mask
    if kind == "freeform":
        return _freeform(h, w, generator, frac)
    raise ValueError(f"unknown mask kind {kind!r}; valid: random, box, freeform")


def _freeform(h: int, w: int, generator: torch.Generator, frac: float) -> np.ndarray:
    """Brush strokes (polylines with random turns and widths) until ``frac`` is covered."""
    u = lambda: float(torch.rand((), generator=generator, dtype=torch.float64))  # noqa: E731
    side = max(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    missing = np.zeros((h, w), dtype=bool)
    for _ in range(200):
        if missing.mean() >= frac:
            break
        p = np.array([u() * w, u() * h])
        radius = (side / 40 + u() * side / 16) / 2 + 0.5
        angle = 2 * math.pi * u()
        for _ in range(4 + int(u() * 8)):
            angle += (u() - 0.5) * math.pi * 0.8
            length = side / 16 + u() * side / 5
            q = np.clip(p + length * np.array([math.cos(angle), math.sin(angle)]), 0, [w - 1, h - 1])
            d = q - p
            t = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / max(d @ d, 1e-12), 0, 1)
            missing |= (xx - p[0] - t * d[0]) ** 2 + (yy - p[1] - t * d[1]) ** 2 <= radius**2
            p = q
    return ~missing


def pack_mask(mask: np.ndarray) -> dict:
    m = np.asarray(mask, dtype=bool)
    bits = zlib.compress(np.packbits(m.ravel()).tobytes(), 9)
    return {"shape": list(m.shape), "bits": base64.b64encode(bits).decode("ascii")}


def unpack_mask(packed: dict) -> np.ndarray:
    shape = tuple(packed["shape"])
    raw = np.frombuffer(zlib.decompress(base64.b64decode(packed["bits"])), dtype=np.uint8)
    return np.unpackbits(raw, count=int(np.prod(shape))).astype(bool).reshape(shape)
