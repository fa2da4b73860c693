"""Planning a restore-video run: clips found under the input, probed, cut into segments.

A clip of n frames becomes segments owning [start, stop) with ``stop - start`` =
``segment_frames`` (fewer for large frames: a segment holds at most ``segment_pixels``
pixels; fewer for short clips, so every actor gets a segment; never fewer than one window), each also decoding the ``segment_overlap`` frames
before its start (its ``context``), which both neighbours restore and the assembly blends.
Segments are what the actor pool runs in parallel: a long clip uses every actor.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".m4v", ".mpg", ".mpeg", ".ts", ".mxf")


@dataclass(frozen=True)
class ClipPlan:
    clip_id: str
    source_uri: str
    relative_path: str
    reference_uri: str
    frames: int     # frames to restore (the clip's, or max_frames)
    fps: float
    width: int
    height: int
    segments: tuple[tuple[int, int, int], ...]  # (context, start, stop)


def segment_bounds(n: int, frames: int, overlap: int) -> list[tuple[int, int, int]]:
    """[(context, start, stop)] of n frames in segments of ``frames`` frames."""
    if frames < 1 or overlap < 0:
        raise ValueError(f"need segment_frames >= 1 and segment_overlap >= 0, got {frames}, {overlap}")
    return [(max(0, s - overlap), s, min(s + frames, n)) for s in range(0, n, frames)]


def segment_length(width: int, height: int, segment_frames: int, segment_pixels: int, window: int,
                   frames: int | None = None, actors: int = 1) -> int:
    """Frames per segment: ``segment_frames``, capped by the pixel budget and so that a clip of
    ``frames`` frames gives every one of ``actors`` a segment; at least one window."""
    length = min(segment_frames, segment_pixels // max(1, width * height))
    if frames:
        length = min(length, -(-frames // max(1, actors)))
    return max(window, length)


def plan_segments(n: int, width: int, height: int, cfg) -> list[tuple[int, int, int]]:
    """The (context, start, stop) segments restore-video cuts a clip of n frames into."""
    window = int(cfg.solver.get("window", 8))
    length = segment_length(width, height, cfg.segment_frames, cfg.segment_pixels, window, n, cfg.ray.actors)
    return segment_bounds(n, length, cfg.segment_overlap)


def probe_uri(uri: str, storage):
    """VideoInfo of a clip at any fsspec URI."""
    from operators.video.probe import probe
    from pipelines.storage import filesystem

    fs, path = filesystem(uri, storage)
    if not fs.isfile(path):
        raise ValueError(f"not a regular file: {posixpath.basename(path)}")
    with fs.open(path, "rb") as f:
        return probe(f)


def segment_id(clip_id: str, context: int) -> str:
    return f"{clip_id}-{int(context):08d}"


def clip_rows(plan: ClipPlan) -> list[dict]:
    """The Ray Data rows of a clip's segments."""
    return [{"id": segment_id(plan.clip_id, c), "clip_id": plan.clip_id, "source_uri": plan.source_uri,
             "relative_path": plan.relative_path, "reference_uri": plan.reference_uri,
             "context": c, "start": s, "stop": e, "clip_frames": plan.frames}
            for c, s, e in plan.segments]
