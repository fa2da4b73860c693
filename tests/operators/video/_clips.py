"""Tiny synthetic clips written with PyAV for exact video I/O tests, and the shared real clips."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.conftest import shared_data


def real_clip(name: str) -> Path:
    """../shared/data/video/<name>; skips (saying why) when the shared data is absent."""
    path = shared_data() / "video" / name
    if not path.is_file():
        import pytest

        pytest.skip(f"development clip not found: {path}")
    return path


def pattern(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(t, h, w, 3) uint8: a smooth gradient drifting over time plus mild noise, a distinct frame each step."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for k in range(t):
        r = 0.5 + 0.4 * np.sin((x + 3 * k) / 9)
        g = 0.5 + 0.4 * np.cos((y - 2 * k) / 7)
        b = 0.5 + 0.3 * np.sin((x + y + 5 * k) / 13)
        im = np.stack([r, g, b], axis=-1) + rng.normal(0, 0.02, (h, w, 3))
        out.append(np.round(np.clip(im, 0, 1) * 255).astype(np.uint8))
    return np.stack(out)


def write_clip(path: Path, frames: np.ndarray, pts: list[int] | None = None,
               time_base: Fraction = Fraction(1, 1000), codec: str = "libx264", pix_fmt: str = "yuv420p",
               options: dict | None = None, rotation: int = 0, tags: tuple[int, int, int, int] | None = None,
               audio: str | None = None) -> Path:
    """Encode (T, H, W, 3) uint8 ``frames`` at ``pts`` (default 40 ms apart); ``tags`` = (range,
    matrix, primaries, trc) AVCOL_* values; ``audio`` an encoder name for a short tone track."""
    pts = list(range(0, 40 * len(frames), 40)) if pts is None else pts
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"preset": "ultrafast", **(options or {})} if codec == "libx264" else (options or {})
        if tags:
            cc = stream.codec_context
            cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = tags
        if rotation:
            stream.set_display_rotation(rotation)
        astream = add_tone(out, audio) if audio else None
        for f, p in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").reformat(format=pix_fmt)
            if tags:
                frame.color_range, frame.colorspace = tags[0], tags[1]
            frame.pts, frame.time_base = p, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if astream is not None:
            write_tone(out, astream, seconds=float(pts[-1] * time_base) + 0.04)
    return path


def add_tone(out: av.container.OutputContainer, codec: str):
    stream = out.add_stream(codec, rate=48000)
    stream.layout = "mono"
    return stream


def write_tone(out: av.container.OutputContainer, stream, seconds: float) -> None:
    """A 440 Hz tone of ``seconds`` in 960-sample frames."""
    n = stream.codec_context.frame_size or 960
    for start in range(0, int(48000 * seconds), n):
        t = (np.arange(start, start + n) / 48000).astype(np.float32)
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def audio_only(path: Path, codec: str = "aac") -> Path:
    """A short tone with no video stream."""
    with av.open(str(path), mode="w") as out:
        write_tone(out, add_tone(out, codec), seconds=0.5)
    return path


def packets(path: Path | str, kind: str = "audio") -> list[tuple[float | None, bytes]]:
    """(pts in seconds, payload) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return [(None if p.pts is None else float(p.pts * p.time_base), bytes(p)) for p in c.demux(s) if p.size]


def decoded_count(path: Path | str) -> int:
    """Frames a plain sequential decode of the first video stream outputs."""
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))
