"""Image decode/encode (Pillow) and video decode/encode (PyAV), with clear errors.

Images decode to float32 HWC RGB in [0, 1] whatever the file holds (grey, RGBA, palette,
16-bit, CMYK); the original mode is reported so outputs can keep it.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

DEFAULT_MAX_PIXELS = 64_000_000


class MediaError(ValueError):
    """A file that cannot be decoded: corrupt, truncated, empty, not an image, or too large."""


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (H, W, 3) float32 in [0, 1]
    mode: str           # Pillow mode of the file ("RGB", "L", "I;16", "CMYK", ...)
    grey: bool          # true when the file holds a single colour channel


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode image bytes; raise MediaError naming the problem."""
    if not data:
        raise MediaError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise MediaError(f"image too large: {w}x{h} = {w * h} pixels > max_pixels {max_pixels}")
            img.load()
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise MediaError(f"image too large (decompression bomb): {e}") from None
    except Exception as e:  # PIL raises many types for broken files
        raise MediaError(f"cannot decode image: {type(e).__name__}: {e}") from None
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey (Pillow opens it as I;16 or I)
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        arr = np.repeat(arr[..., None], 3, axis=2)
        grey = True
    elif mode in ("L", "LA", "1"):
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        arr = np.repeat(arr[..., None], 3, axis=2)
        grey = True
    elif mode in ("RGBA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        arr = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.float32) / 255.0
        grey = False
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        grey = False
    return DecodedImage(np.ascontiguousarray(np.clip(arr, 0, 1)), mode, grey)


def to_uint8(pixels: np.ndarray, grey: bool = False, band: int = 256) -> np.ndarray:
    """(H, W, C) or (H, W) float in [0, 1] -> uint8 round(clip(x) * 255), (H, W[, C]) (the
    channel mean first when ``grey``), computed ``band`` rows at a time."""
    arr = np.asarray(pixels)
    grey = grey and arr.ndim == 3
    out = np.empty(arr.shape[:2] if grey else arr.shape, np.uint8)
    for top in range(0, arr.shape[0], band):
        part = np.clip(arr[top:top + band].astype(np.float32), 0, 1)
        if grey:
            part = part.mean(axis=2)
        out[top:top + band] = np.round(part * 255)
    return out


def encode_png(pixels: np.ndarray, grey: bool = False) -> bytes:
    """(H, W, 3) or (H, W) float in [0, 1] -> 8-bit PNG bytes (grey when asked). Converted to
    8 bits in bands of rows, so the work memory beyond the uint8 image is one band."""
    u8 = to_uint8(pixels, grey)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="PNG")
    return buf.getvalue()


def fit_height(im: np.ndarray, height: int) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> (height, W', 3) uint8 at the same aspect ratio (nearest
    neighbour when enlarging, so pixels stay visible; Lanczos when shrinking)."""
    pil = Image.fromarray(np.round(np.clip(im, 0, 1) * 255).astype(np.uint8))
    w = max(1, round(pil.width * height / pil.height))
    return np.asarray(pil.resize((w, height), Image.Resampling.NEAREST if pil.height < height else Image.Resampling.LANCZOS))


def side_by_side(images: list[np.ndarray], height: int = 256, gap: int = 4) -> np.ndarray:
    """Resize each (H, W, 3) image to ``height`` and place them left to right on white."""
    tiles = [fit_height(im, height) for im in images]
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for t in tiles:
        canvas[:, x:x + t.shape[1]] = t[..., :3]
        x += t.shape[1] + gap
    return canvas.astype(np.float32) / 255.0
