"""Decode frames [start, stop) of a probed video, a chunk at a time, seeking to the segment.

``read_frames`` seeks (backward, to the keyframe at or before frame ``start``) and drops the
decoded frames before ``info.pts[start]``, so a segment in the middle of a long clip costs at
most one GOP of extra decoding. Frames are matched to indices by their pts against
``info.pts``; when that cannot work (frames without pts, or a seek that lands past the
target, as with an open GOP's leading B-frames) it decodes from the first frame instead and
counts. Frames come out in stored orientation (``info.rotation`` is metadata, not applied).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from operators.video.colour import frame_to_rgb
from operators.video.probe import Source, VideoError, VideoInfo, open_input, source_name


@dataclass(frozen=True)
class FrameChunk:
    index: int            # index of the first frame in the clip
    frames: np.ndarray    # (T, H, W, 3) float32 RGB in [0, 1]
    pts: tuple[int, ...]  # (T,) in info.time_base units


def read_frames(source: Source, info: VideoInfo, start: int = 0, stop: int | None = None,
                chunk: int = 8) -> Iterator[FrameChunk]:
    """Yield frames [start, stop) of ``source`` (as probed into ``info``), ``chunk`` at a time.

    A truncated or corrupt stream yields every frame that decoded, then raises VideoError
    whose ``frame`` is the first index it could not deliver.
    """
    stop = info.frames if stop is None else stop
    if not 0 <= start <= stop <= info.frames:
        raise ValueError(f"need 0 <= start <= stop <= frames ({info.frames}), got [{start}, {stop})")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if start == stop:
        return
    name = source_name(source)
    if info.truncated_at is not None and start >= info.truncated_at < stop:
        raise VideoError(f"{name}: frames {info.truncated_at}.. are missing (truncated file: "
                         f"{info.truncated_at} of {info.frames} frames stored)", frame=start)
    frames: list[np.ndarray] = []
    first = start  # index of frames[0]
    error: VideoError | None = None
    indexed = _indexed(source, info, start, name)
    try:
        for i, frame in indexed:
            frames.append(frame_to_rgb(frame, info.color_space, info.color_range))
            if len(frames) == chunk or i + 1 == stop:
                yield FrameChunk(first, np.stack(frames), info.pts[first:i + 1])
                first, frames = i + 1, []
            if i + 1 == stop:
                return
    except av.error.FFmpegError as e:
        error = VideoError(f"{name}: frame {first + len(frames)} failed to decode "
                           f"({type(e).__name__}: {e})", frame=first + len(frames))
    except VideoError as e:
        error = e
    finally:
        indexed.close()  # the container closes now, not when the generator is collected
    if frames:  # what decoded before the failure
        yield FrameChunk(first, np.stack(frames), info.pts[first:first + len(frames)])
    if error is None:
        got = first + len(frames)
        error = VideoError(f"{name}: the stream ends after {got} of {info.frames} frames "
                           "(truncated or corrupt file)", frame=got)
    raise error


def _decoded(container: av.container.InputContainer, stream) -> Iterator[av.VideoFrame]:
    """Every frame the decoder outputs from the current position (flushed at the end)."""
    for packet in container.demux(stream):
        yield from packet.decode()


def _indexed(source: Source, info: VideoInfo, start: int, name: str) -> Iterator[tuple[int, av.VideoFrame]]:
    """(index, frame) for frames ``start``.. in display order: seek, else count from 0.

    A seek that lands past the target (an open GOP's leading frames are dropped after a seek
    to their keyframe) is retried from 8, then 64 frames earlier, before counting from 0.
    """
    target = info.pts[start]
    with open_input(source) as container:
        stream = container.streams[info.stream]
        stream.codec_context.thread_type = "AUTO"
        for back in (0, 8, 64):
            if start - back <= 0:
                break
            try:
                container.seek(info.pts[start - back], backward=True, stream=stream)
            except av.error.FFmpegError:  # not seekable (a raw elementary stream): count instead
                break
            frames = _decoded(container, stream)
            frame = None
            for frame in frames:
                if frame.pts is None or frame.pts >= target:
                    break
            if frame is None or frame.pts is None:
                break
            if frame.pts == target:
                yield from _by_pts(frame, frames, info, start, name)
                return
    # Sequential: the first frame decoded is frame 0 (no pts to go by, or seeks overshot).
    with open_input(source) as container:
        stream = container.streams[info.stream]
        stream.codec_context.thread_type = "AUTO"
        for i, frame in enumerate(_decoded(container, stream)):
            if i >= info.frames:
                return
            if i >= start:
                yield i, frame


def _by_pts(first: av.VideoFrame, rest: Iterator[av.VideoFrame], info: VideoInfo, start: int,
            name: str) -> Iterator[tuple[int, av.VideoFrame]]:
    """Index frames by matching their pts to ``info.pts``; a gap raises VideoError naming the
    first missing frame (the decoder dropped it), a repeated or earlier pts is skipped."""
    i = start
    yield i, first
    for frame in rest:
        if i + 1 >= info.frames:
            return
        if frame.pts is not None and frame.pts < info.pts[i + 1]:
            continue
        if frame.pts is not None and frame.pts > info.pts[i + 1]:
            raise VideoError(f"{name}: frame {i + 1} (pts {info.pts[i + 1]}) did not decode; "
                             f"the decoder went on at pts {frame.pts}", frame=i + 1)
        i += 1
        yield i, frame
