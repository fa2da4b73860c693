"""Stage `video load`: decode one segment of a clip (fsspec + PyAV seek), and in synthesize mode
degrade it: per-frame degradations seeded by (job seed, clip id, frame index), so a frame two
segments share gets the same noise in both; ``video_codec`` on the whole segment (seeded by
clip id and the segment's first frame).

A row is one segment: frames [context, stop) of clip ``clip_id``; [context, start) are the
frames shared with the previous segment (restored by both, blended at assembly). Out: ``lq``
(T, H, W, 3) float16 (what the solver sees), ``hq`` uint8 (the reference, empty when none),
``pts`` JSON. A failure becomes an error row; a clip that stops decoding part-way keeps the
frames before the failure and says from which frame (``truncated_at``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from actors.columns import batch_to_rows, error_fields, no_error, pack, rows_to_batch
from actors.runtime import release_freed_memory
from operators.degradations import build_degradation
from operators.seeding import make_generator
from operators.video.decode import read_frames
from operators.video.probe import VideoError, probe
from pipelines.sections import StorageConfig
from pipelines.storage import filesystem

PER_SEGMENT = {"video_codec"}  # degradations applied to the whole segment, not frame by frame


def decode_segment(uri: str, storage: StorageConfig, start: int, stop: int) -> tuple[np.ndarray, list[int], int | None]:
    """(frames (T, H, W, 3) float32, pts, first frame that failed or None) of [start, stop)."""
    fs, path = filesystem(uri, storage)
    frames, pts, failed = [], [], None
    with fs.open(path, "rb") as f:
        info = probe(f)
        f.seek(0)
        try:
            for chunk in read_frames(f, info, start=start, stop=min(stop, info.frames)):
                frames.append(chunk.frames)
                pts.extend(chunk.pts)
        except VideoError as exc:
            if exc.frame is None or not frames:
                raise
            failed = exc.frame
    if not frames:
        raise VideoError(f"no frames decoded in [{start}, {stop})", start)
    return np.concatenate(frames), pts, failed


def degrade_frames(spec: dict, frames: np.ndarray, seed: int, clip_id: str, first: int) -> tuple[np.ndarray, dict]:
    """(lq (T, h, w, 3), the bound degradation's spec) of clean frames (T, H, W, 3); frame i of
    the array is frame ``first + i`` of the clip."""
    op = build_degradation(spec)
    x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    op = op.bind(tuple(x[:1].shape), make_generator(seed, clip_id, "bind"))  # one operator per clip
    if op.name in PER_SEGMENT:
        y = op.measure(x, make_generator(seed, clip_id, "noise", first))
    else:
        y = torch.cat([op.measure(x[i: i + 1], make_generator(seed, clip_id, "noise", first + i))
                       for i in range(x.shape[0])])
    return y.permute(0, 2, 3, 1).numpy(), op.spec()


@dataclass
class SegmentLoadStage:
    degradation: dict
    synthesize: bool
    seed: int
    storage: StorageConfig = field(default_factory=StorageConfig)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = rows_to_batch([self.load_row(r) for r in batch_to_rows(batch)])
        release_freed_memory()  # a segment's frames (actors.runtime)
        return out

    def load_row(self, row: dict) -> dict:
        out = {**row, "lq": b"", "hq": b"", "pts": "[]", "truncated_at": -1,
               "degradation": json.dumps(self.degradation), **no_error()}
        stage = "decode"
        try:
            first, stop = int(row["context"]), int(row["stop"])
            frames, pts, failed = decode_segment(str(row["source_uri"]), self.storage, first, stop)
            out["pts"], out["truncated_at"] = json.dumps(pts), -1 if failed is None else failed
            stage = "degrade"
            if self.synthesize:
                lq, spec = degrade_frames(self.degradation, frames, self.seed, str(row["clip_id"]), first)
                out["hq"], out["degradation"] = pack(frames * 255 + 0.5, np.uint8), json.dumps(spec)
            else:
                lq = frames
                if row.get("reference_uri"):
                    stage = "reference"
                    ref, _, _ = decode_segment(str(row["reference_uri"]), self.storage, first, first + len(frames))
                    if ref.shape != frames.shape:
                        raise VideoError(f"reference frames {ref.shape[1:3]} x {len(ref)} do not match the "
                                         f"input's {frames.shape[1:3]} x {len(frames)}")
                    out["hq"] = pack(ref * 255 + 0.5, np.uint8)
            out["lq"] = pack(lq, np.float16)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields(stage, exc))
        return out
