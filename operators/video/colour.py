"""YUV <-> RGB for video frames with the source's matrix and range, through swscale.

Which matrix: the stream's tag (AVCOL_SPC_*). An untagged stream gets the convention players
use (mpv, VLC, browsers): BT.601 below 720 lines, BT.709 from 720 lines up. Which range: the
tag; untagged means limited (MPEG, 16-235) except for the full-range ``yuvj*`` formats. The
encoder converts back with the same choice, so a restored clip decodes the way its source did.
"""
from __future__ import annotations

from functools import lru_cache

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

# No scaling happens, so the flags only pick exact rounding and full-resolution chroma
# interpolation instead of swscale's fast defaults (about +1.5 ms a 640x360 frame).
FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT \
    | Interpolation.FULL_CHR_H_INP

# AVCOL_SPC_* -> swscale matrix; 0 (RGB), 2 (unspecified) and the rest fall to the size rule.
_MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
             7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}


@lru_cache(maxsize=None)
def is_rgb(pix_fmt: str) -> bool:
    """True for packed or planar RGB formats (bgr0, gbrp, rgb48le, ...): no matrix applies."""
    return av.VideoFormat(pix_fmt).is_rgb


@lru_cache(maxsize=None)
def deep(pix_fmt: str) -> bool:
    """True when a component has more than 8 bits (10-bit HDR, 16-bit RGB, ...)."""
    return max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8


def matrix(color_space: int, height: int) -> Colorspace:
    """The YUV matrix for an AVCOL_SPC_* tag (untagged: BT.601 under 720 lines, else BT.709)."""
    return _MATRICES.get(color_space, Colorspace.ITU601 if height < 720 else Colorspace.ITU709)


def yuv_range(color_range: int, pix_fmt: str) -> ColorRange:
    """Limited (MPEG) unless tagged full (JPEG) or a ``yuvj*`` format."""
    full = color_range == ColorRange.JPEG or pix_fmt.startswith("yuvj")
    return ColorRange.JPEG if full else ColorRange.MPEG


def frame_to_rgb(frame: av.VideoFrame, color_space: int, color_range: int) -> np.ndarray:
    """A decoded frame -> (H, W, 3) float32 RGB in [0, 1] (16-bit path for deep formats)."""
    fmt = frame.format.name
    out = "rgb48le" if deep(fmt) else "rgb24"
    if is_rgb(fmt):
        arr = frame.to_ndarray(format=out)
    else:
        arr = frame.to_ndarray(format=out, src_colorspace=matrix(color_space, frame.height),
                               src_color_range=yuv_range(color_range, fmt),
                               dst_color_range=ColorRange.JPEG, interpolation=FLAGS, threads=1)
    rgb = arr.astype(np.float32)
    rgb *= np.float32(1 / 65535 if out == "rgb48le" else 1 / 255)
    return rgb


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, color_space: int, color_range: int) -> av.VideoFrame:
    """(H, W, 3) float RGB in [0, 1] -> an 8-bit frame in ``pix_fmt``, converted with the
    matrix and range the decoder will assume for these tags."""
    u8 = np.round(np.clip(np.asarray(rgb, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(u8), format="rgb24")
    if is_rgb(pix_fmt):
        return frame.reformat(format=pix_fmt)
    out = frame.reformat(format=pix_fmt, src_color_range=ColorRange.JPEG,
                         dst_colorspace=matrix(color_space, frame.height),
                         dst_color_range=yuv_range(color_range, pix_fmt), interpolation=FLAGS, threads=1)
    out.colorspace, out.color_range = color_space, color_range  # the source's tags, as they were
    return out
