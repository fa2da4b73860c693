"""Video I/O with PyAV: probe a clip, decode a segment of it, write restored frames back.

``probe`` -> ``VideoInfo`` (every frame's pts, colour tags, rotation, audio streams);
``read_frames`` -> ``FrameChunk``s of float RGB for frames [start, stop), seeking to start;
``VideoWriter`` -> H.264 / H.265 / FFV1 / PNG output keeping timing, tags and audio;
``output_name`` -> where that output goes. Errors are ``VideoError`` (a ``MediaError``).
"""
from __future__ import annotations

from operators.video.decode import FrameChunk, read_frames
from operators.video.encode import VideoWriter, output_name
from operators.video.probe import AudioInfo, VideoError, VideoInfo, probe

__all__ = ["AudioInfo", "FrameChunk", "VideoError", "VideoInfo", "VideoWriter", "output_name",
           "probe", "read_frames"]
