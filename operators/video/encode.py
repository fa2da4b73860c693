"""Write restored frames as a video that keeps its source's timing, size, tags and audio.

``VideoWriter`` encodes H.264 / H.265 (libx264 / libx265 at a CRF), FFV1 (lossless) or a
directory of PNG files. Kept from the source: every frame's pts in the source time base
(variable frame rate too), width x height, colour range / matrix / primaries / transfer
tags, display rotation, and every audio stream copied packet for packet (no re-encode).

Pixel formats: H.264 / H.265 use yuv420p, or yuv444p when the width or height is odd
(4:2:0 cannot code an odd size, and its cropping works in 2-pixel units; 4:4:4 keeps the
exact size at the cost of the High 4:4:4 / Main 4:4:4 profiles, which some hardware
players lack). FFV1 uses bgr0, 8-bit RGB, so decoding returns the 8-bit input exactly.
PNG writes ``path/frame_000000.png`` (numbered by source frame index) and holds no audio:
``audio_source`` is ignored there (``output_name``'s note says so for the job's record).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from fractions import Fraction
from typing import BinaryIO, Literal

import av
import numpy as np

from operators.media import encode_png
from operators.video.audio_copy import AudioCopy
from operators.video.colour import is_rgb, rgb_to_frame
from operators.video.probe import VideoError, VideoInfo

Codec = Literal["h264", "h265", "ffv1", "png"]
_ENCODERS = {"h264": "libx264", "h265": "libx265", "ffv1": "ffv1"}
_KEEP = {"h264": (".mp4", ".m4v", ".mov", ".mkv"), "h265": (".mp4", ".mov", ".mkv"), "ffv1": (".mkv",)}
_YUV_MATRICES = (1, 4, 5, 6, 7, 9, 10)  # AVCOL_SPC_* tags the output may carry over as they are


class VideoWriter:
    """``with VideoWriter(path, info) as w: w.write(frames, pts)``; frames (T, H, W, 3) float
    RGB in [0, 1] at the source size, pts in ``info.time_base`` and increasing. ``crf`` and
    ``preset`` (x264/x265 speed preset) apply to h264/h265 only."""

    def __init__(self, path: str, info: VideoInfo, codec: Codec = "h264", crf: int = 18,
                 audio_source: str | BinaryIO | None = None, preset: str = "medium"):
        if codec not in (*_ENCODERS, "png"):
            raise ValueError(f"unknown codec {codec!r}; valid: h264, h265, ffv1, png")
        if codec in ("h264", "h265") and not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {crf}")
        if codec == "h265" and min(info.width, info.height) < 64:  # see degradations/video_codec.py
            raise ValueError(f"h265 output needs at least 64 x 64 (libx265 corrupts memory below); "
                             f"{info.width}x{info.height} given, use h264")
        self.path, self.info, self.codec = path, info, codec
        self.frames_written = 0
        self._last: int | None = None
        self._audio: AudioCopy | None = None
        self._out = None
        if codec == "png":
            os.makedirs(path, exist_ok=True)
            self._index = {p: i for i, p in enumerate(info.pts)}
            return
        yuv = codec != "ffv1"
        even = info.width % 2 == 0 and info.height % 2 == 0
        self._pix_fmt = ("yuv420p" if even else "yuv444p") if yuv else "bgr0"
        # Tags as the source had them; a yuvj (full range) or RGB source gets an explicit range.
        self._space = (info.color_space if info.color_space in _YUV_MATRICES else 2) if yuv else 0
        full = info.pix_fmt.startswith("yuvj") or (info.color_range == 2 and not is_rgb(info.pix_fmt))
        self._range = (2 if full else 1 if is_rgb(info.pix_fmt) else info.color_range) if yuv else 2
        ext = os.path.splitext(path)[1].lower()
        options = {"movflags": "+faststart"} if ext in (".mp4", ".m4v", ".mov") else {}
        self._out = av.open(path, mode="w", options=options)
        try:
            self._stream = self._add_video(codec, crf, preset, ext)
            if audio_source is not None:
                self._audio = AudioCopy(audio_source, self._out)
            self._out.start_encoding()
        except (av.error.FFmpegError, ValueError) as e:
            audio = f" with audio {', '.join(self._audio.codecs)}" if self._audio else ""
            self._abort()
            raise VideoError(f"{path}: cannot write {codec}{audio} into {ext or 'this'} "
                             f"({type(e).__name__}: {e}); see output_name()") from None

    def _add_video(self, codec: Codec, crf: int, preset: str, ext: str):
        info = self.info
        rate = Fraction(info.fps).limit_denominator(10_000) if info.fps > 0 else Fraction(25)
        stream = self._out.add_stream(_ENCODERS[codec], rate=rate)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, self._pix_fmt
        stream.time_base = stream.codec_context.time_base = info.time_base
        cc = stream.codec_context
        cc.color_range, cc.colorspace = self._range, self._space
        cc.color_primaries, cc.color_trc = info.color_primaries, info.color_trc
        if codec == "h264":
            stream.options = {"crf": str(crf), "preset": preset}
        elif codec == "h265":
            stream.options = {"crf": str(crf), "preset": preset, "x265-params": "log-level=error"}
            if ext in (".mp4", ".m4v", ".mov"):
                stream.codec_tag = "hvc1"  # the tag Apple players require for HEVC
        else:  # FFV1 version 3 with slice CRCs: the archival profile (RFC 9043)
            stream.options = {"level": "3", "slicecrc": "1", "g": "1"}
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        return stream

    def write(self, frames: np.ndarray, pts: Sequence[int]) -> None:
        """frames: (T, H, W, 3) float RGB in [0, 1]; pts: T increasing source timestamps."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (self.info.height, self.info.width, 3):
            raise ValueError(f"frames must be (T, {self.info.height}, {self.info.width}, 3), "
                             f"got {frames.shape}")
        if len(pts) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(pts)} pts")
        for rgb, p in zip(frames, pts):
            p = int(p)
            if self._last is not None and p <= self._last:
                raise ValueError(f"pts must increase: {p} after {self._last}")
            self._last = p
            if self.codec == "png":
                if p not in self._index:
                    raise ValueError(f"pts {p} is not a frame of the source (png files are named by index)")
                with open(os.path.join(self.path, f"frame_{self._index[p]:06d}.png"), "wb") as f:
                    f.write(encode_png(rgb))
            else:
                frame = rgb_to_frame(rgb, self._pix_fmt, self._space, self._range)
                frame.pts, frame.time_base = p, self.info.time_base
                self._mux(self._stream.encode(frame))
            self.frames_written += 1

    def _mux(self, packets) -> None:
        for packet in packets:
            self._out.mux(packet)
            if self._audio is not None:  # audio up to this packet's time, so the two interleave
                t = packet.dts if packet.dts is not None else packet.pts
                self._audio.copy_until(float(t * packet.time_base) if t is not None else None)

    def close(self) -> None:
        """Flush the encoder, copy the audio that remains, and finish the file (idempotent)."""
        if self._out is None:
            return
        try:
            self._mux(self._stream.encode())
            if self._audio is not None:
                self._audio.copy_until(None)
        finally:
            self._abort()

    def _abort(self) -> None:
        if self._audio is not None:
            self._audio.close()
        if self._out is not None:
            out, self._out = self._out, None
            out.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # keep the caller's error; the file stays as far as it got
            with contextlib.suppress(Exception):
                self._abort()


def output_name(relative_path: str, codec: Codec) -> tuple[str, str]:
    """The output's relative path for ``codec`` and a note saying why the container changed
    ("" when it did not). png: a directory ``<name>.<ext>.frames`` of frame_NNNNNN.png."""
    stem, ext = os.path.splitext(relative_path)
    if codec == "png":
        return f"{relative_path}.frames", "png: a directory of frame_NNNNNN.png files, without audio"
    if codec not in _KEEP:
        raise ValueError(f"unknown codec {codec!r}; valid: h264, h265, ffv1, png")
    if ext.lower() in _KEEP[codec]:
        return relative_path, ""
    label = {"h264": "H.264", "h265": "H.265"}.get(codec, "FFV1")
    if codec == "ffv1":
        why = "FFV1 output is always Matroska (.mkv), its archival container"
    elif ext.lower() == ".webm":
        why = f"WebM holds only VP8/VP9/AV1 video, not {label}"
    else:
        why = f"{label} output keeps only {' '.join(_KEEP[codec])} containers, not {ext or 'a name without extension'}"
    return f"{stem}.mkv", f"{relative_path} -> {stem}.mkv: {why}"
