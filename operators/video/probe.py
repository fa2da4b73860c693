"""Probe a video without decoding it: size, every frame's pts, colour tags, rotation, audio.

Timestamps come from demuxing the video packets (no decode), so probing reads the whole
file once but costs little CPU. Only the first frame is decoded, to prove a decoder works
and to read what the decoder alone reports (rotation, pixel format, colour tags).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av

from operators.media import MediaError

Source = str | os.PathLike | BinaryIO


class VideoError(MediaError):
    """A video that cannot be read; ``frame`` is the first frame that failed, when known."""

    def __init__(self, message: str, frame: int | None = None):
        super().__init__(message)
        self.frame = frame

    def __reduce__(self):  # keep ``frame`` through pickling (Ray ships errors between workers)
        return type(self), (str(self), self.frame)


@dataclass(frozen=True)
class AudioInfo:
    index: int        # stream index in the container
    codec: str        # FFmpeg codec name ("aac", "mp3", "opus")
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` found. Colour tags are FFmpeg enum values (AVCOL_*; 2 = unspecified).

    A truncated file whose header declares its length (mp4/mov sample count, FFmpeg's
    Matroska DURATION tag) keeps the declared ``frames``; ``truncated_at`` is the first
    missing one, the pts from there on are extrapolated at the mean step, and
    ``read_frames`` raises VideoError on reaching it. Without such a header a truncated
    file simply looks shorter.
    """

    width: int
    height: int
    frames: int
    fps: float                 # average: (frames - 1) / (pts span in seconds)
    time_base: Fraction
    pts: tuple[int, ...]       # every frame, display order, in time_base units
    codec: str
    pix_fmt: str
    color_range: int           # AVCOL_RANGE_*: 0 unspecified, 1 limited (MPEG), 2 full (JPEG)
    color_space: int           # AVCOL_SPC_* (the YUV matrix): 1 bt709, 5/6 bt601, 9 bt2020
    color_primaries: int       # AVCOL_PRI_*
    color_trc: int             # AVCOL_TRC_*
    rotation: int              # display rotation, degrees counter-clockwise, in [0, 360)
    audio: tuple[AudioInfo, ...]
    duration_s: float          # video: pts span plus one frame
    container: str             # FFmpeg demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")
    variable_fps: bool         # pts steps differ by more than one time_base tick
    stream: int = 0            # index of the video stream in the container
    truncated_at: int | None = None  # first frame the container declares but the file lacks


def source_name(source: Source) -> str:
    """A path, or a file object's ``name`` (fsspec files carry their URL there), for messages."""
    return str(getattr(source, "name", "<file object>")) if hasattr(source, "read") else os.fspath(source)


def open_input(source: Source) -> av.container.InputContainer:
    """Open a path or a seekable binary file object (rewound to 0); VideoError if not media."""
    name = source_name(source)
    if hasattr(source, "read"):
        source.seek(0, os.SEEK_END)
        size = source.tell()
        source.seek(0)
    else:
        if not os.path.exists(name):
            raise VideoError(f"{name}: no such file")
        size = os.path.getsize(name)
    if size == 0:
        raise VideoError(f"{name}: empty file (0 bytes)")
    try:
        return av.open(source if hasattr(source, "read") else name, mode="r")
    except av.error.FFmpegError as e:
        raise VideoError(f"{name}: not a readable media file ({type(e).__name__}: {e})") from None


def video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    """The first real video stream (cover art is skipped); VideoError without a decoder."""
    streams = [s for s in container.streams.video
               if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        found = ", ".join(f"{s.type} {s.codec_context.name if s.codec_context else '?'}"
                          for s in container.streams) or "none"
        raise VideoError(f"{name}: no video stream (streams found: {found})")
    stream = streams[0]
    if stream.codec_context is None:
        raise VideoError(f"{name}: video stream {stream.index} has an unknown codec "
                         "(no decoder for it in this FFmpeg build)")
    return stream


def probe(source: Source) -> VideoInfo:
    """Describe ``source`` (a local path or a seekable binary file such as an fsspec file)."""
    name = source_name(source)
    with open_input(source) as container:
        stream = video_stream(container, name)
        stream.codec_context.thread_type = "AUTO"
        stamps, stored, first = _demux(container, stream, name)
        tb = stream.time_base
        pts = sorted(stamps)
        fps = float((len(pts) - 1) / ((pts[-1] - pts[0]) * tb)) if len(pts) > 1 and pts[-1] > pts[0] \
            else float(stream.average_rate or stream.guessed_rate or 0)
        steps = [b - a for a, b in zip(pts, pts[1:])]
        truncated_at = None
        missing = _missing_frames(stream, stored, pts, fps)
        if missing:  # the file ends before the frames its header declares: extrapolate their pts
            truncated_at = len(pts)
            step = (pts[-1] - pts[0]) // (len(pts) - 1) if len(pts) > 1 else max(1, round(1 / (fps * tb)))
            pts += [pts[-1] + step * k for k in range(1, missing + 1)]
        audio = tuple(AudioInfo(s.index, s.codec_context.codec.canonical_name if s.codec_context else "?",
                                int(s.codec_context.sample_rate or 0) if s.codec_context else 0,
                                int(s.codec_context.channels or 0) if s.codec_context else 0)
                      for s in container.streams.audio)
        return VideoInfo(
            width=first.width, height=first.height, frames=len(pts), fps=fps,
            time_base=Fraction(tb), pts=tuple(pts), codec=stream.codec_context.codec.canonical_name,
            pix_fmt=first.format.name, color_range=int(first.color_range),
            color_space=int(first.colorspace), color_primaries=int(first.color_primaries),
            color_trc=int(first.color_trc), rotation=round(first.rotation) % 360, audio=audio,
            duration_s=float((pts[-1] - pts[0]) * tb) + (1 / fps if fps else 0.0),
            container=container.format.name,
            variable_fps=bool(steps) and max(steps) - min(steps) > 1,
            stream=stream.index, truncated_at=truncated_at)


def _demux(container, stream, name: str) -> tuple[list[int], int, av.VideoFrame | None]:
    """One pass over the video packets: display stamps of the frames a decoder will output
    (pts, else dts, else one nominal step after the previous), the number of packets stored
    (discarded ones too), and the first decoded frame (decoding stops once it is out).
    VideoError when no frame decodes."""
    stamps: list[int] = []
    stored = 0
    first = error = None
    step = max(1, round(1 / (stream.average_rate * stream.time_base))) if stream.average_rate else 1
    try:
        for packet in container.demux(stream):
            if packet.size:
                stored += 1
                if not packet.is_discard:
                    t = packet.pts if packet.pts is not None else packet.dts
                    stamps.append(t if t is not None else (stamps[-1] + step if stamps else 0))
            if first is None:  # the empty packet at the end flushes the decoder
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:  # keep going: a later keyframe may decode
                    error, frames = e, []
                first = frames[0] if frames else None
    except av.error.FFmpegError as e:
        # A read error after the first frame keeps what was demuxed; the declared frame
        # count (if any) marks the rest as missing and read_frames raises on reaching it.
        error = error or e
    if first is None:
        why = f"{type(error).__name__}: {error}" if error else f"no frame out of {len(stamps)} packets"
        raise VideoError(f"{name}: cannot decode {stream.codec_context.name} video stream "
                         f"{stream.index} ({why})")
    return stamps, stored, first


def _missing_frames(stream, stored: int, pts: list[int], fps: float) -> int:
    """Frames the container header declares but the file lacks (0 when complete or unknown):
    mp4/mov's sample count against the packets stored, or, for an FFmpeg-written Matroska
    track, its DURATION tag when it ends more than two of the longest frame steps after the
    last packet (so a variable-rate clip's long last frame is not taken for truncation)."""
    if stream.frames:
        return max(0, stream.frames - stored)
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", str(stream.metadata.get("DURATION", "")).strip())
    if not (m and fps and pts):
        return 0
    declared_end = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    longest = max((b - a for a, b in zip(pts, pts[1:])), default=0) * stream.time_base or 1 / fps
    gap = declared_end - float(pts[-1] * stream.time_base + longest)
    return round(gap * fps) if gap > 2 * longest else 0
