"""Stage `assemble`: one clip's restored segments -> the restored clip, its metrics and its
comparison video.

Segments are read in order and joined with the window blend (operators.video.windows) over the
frames two segments share; frames are encoded with the source's timing and colour tags and
every audio stream copied packet for packet (operators.video.encode), to
``<output>/restored/<relative path>`` (container changed only where the codec needs it: the
row's ``restored_note`` says so). Metrics are accumulated frame by frame against the reference
(the source itself with synthesize: true) before the output codec. The first ``comparison
seconds`` of a compared clip become ``<output>/comparisons/<relative path>.mp4`` (input |
restored | reference) and a strip of four frames (``.png``). Every output path goes through
pipelines.output_paths (normalised, never outside its folder). The segment files are deleted last.
"""
from __future__ import annotations

import io
import json
import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from actors.columns import batch_to_rows, error_fields, rows_to_batch
from operators.metrics.clip_stats import ClipMetrics
from operators.video.decode import read_frames
from operators.video.encode import VideoWriter, output_name
from operators.video.probe import probe
from operators.video.strips import comparison_frame, frame_strip
from operators.video.windows import blend_weights
from pipelines.output_paths import normalise_relative, output_uri
from pipelines.sections import StorageConfig
from pipelines.storage import filesystem, join, put_file_atomic, read_bytes, write_bytes_atomic


def restored_frames(segments: list[dict], storage: StorageConfig):
    """Yield (frame index, restored (H, W, 3) float32, lq or None) in order, blending each
    segment's leading shared frames with the previous segment's trailing ones. A segment that
    came back short (the clip stopped decoding) ends the clip there."""
    held: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for k, seg in enumerate(segments):
        data = np.load(io.BytesIO(read_bytes(seg["segment_uri"], storage)))
        frames, lq = data["restored"], data["lq"] if "lq" in data.files else None
        context, shared = int(seg["context"]), int(seg["start"]) - int(seg["context"])
        a = blend_weights(shared)
        keep_from = int(segments[k + 1]["context"]) if k + 1 < len(segments) else None
        for i in range(len(frames)):
            idx, f = context + i, frames[i].astype(np.float32) / 255
            own_lq = None if lq is None or i < shared else lq[i - shared].astype(np.float32) / 255
            if i < shared:
                if idx not in held:
                    continue
                before, own_lq = held.pop(idx)
                f = (1 - a[i]) * before + a[i] * f
            elif keep_from is not None and idx >= keep_from:
                held[idx] = (f, own_lq)  # the next segment restored it too: blend it there
                continue
            yield idx, f, own_lq
        if keep_from is not None and len(frames) < int(seg["stop"]) - context:
            break  # short segment: nothing after it joins up
    for idx in sorted(held):
        yield idx, *held.pop(idx)


def _put(local: str, uri: str, storage: StorageConfig) -> str:
    """Upload the output: a file, or a folder of PNG frames (codec png) file by file."""
    if Path(local).is_dir():
        for f in sorted(Path(local).iterdir()):
            put_file_atomic(str(f), join(uri, f.name), storage)
        return uri
    return put_file_atomic(local, uri, storage)


def reference_frames(uri: str, storage: StorageConfig):
    """Yield reference frames (H, W, 3) in order, or nothing when ``uri`` is empty."""
    if not uri:
        return
    fs, path = filesystem(uri, storage)
    with fs.open(path, "rb") as f:
        info = probe(f)
        f.seek(0)
        for chunk in read_frames(f, info):
            yield from chunk.frames


@dataclass
class AssembleStage:
    output: str
    codec: dict = field(default_factory=lambda: {"name": "h264", "crf": 18})
    compare_clips: tuple[str, ...] = ()
    comparison_seconds: float = 3.0
    storage: StorageConfig = field(default_factory=StorageConfig)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch([self.assemble_row(r) for r in batch_to_rows(batch)])

    def assemble_row(self, row: dict) -> dict:
        out = {**row, "restored_uri": "", "restored_note": "", "psnr": math.nan, "ssim": math.nan,
               "flicker": math.nan, "warp_error": math.nan, "ref_warp_error": math.nan, "frames_written": 0,
               "comparison_uri": "", "strip_uri": ""}
        stage = "assemble"
        try:
            segments = json.loads(str(row["segments"]))
            fs, path = filesystem(str(row["source_uri"]), self.storage)
            with fs.open(path, "rb") as src, tempfile.TemporaryDirectory() as tmp:
                info = probe(src)
                src.seek(0)
                base = normalise_relative(str(row["relative_path"]))
                rel, out["restored_note"] = output_name(base, self.codec.get("name", "h264"))
                local = str(Path(tmp) / Path(rel).name)
                stats, panels = ClipMetrics(), []
                compare = str(row["clip_id"]) in self.compare_clips
                refs = reference_frames(str(row["reference_uri"]), self.storage)
                writer = None
                cmp_writer = None
                for idx, frame, lq in restored_frames(segments, self.storage):
                    if writer is None:
                        size = replace(info, height=frame.shape[0], width=frame.shape[1])
                        writer = VideoWriter(local, size, codec=self.codec.get("name", "h264"),
                                             crf=int(self.codec.get("crf", 18)), audio_source=src)
                    ref = next(refs, None)
                    stats.update(frame, ref if ref is not None and ref.shape == frame.shape else None)
                    writer.write(frame[None], [info.pts[idx]])
                    out["frames_written"] += 1
                    if compare and lq is not None and idx < self.comparison_seconds * info.fps:
                        both = comparison_frame(lq, frame, ref)
                        if cmp_writer is None:
                            cmp_info = replace(info, height=both.shape[0], width=both.shape[1], audio=())
                            cmp_writer = VideoWriter(str(Path(tmp) / "cmp.mp4"), cmp_info, codec="h264", crf=18)
                        cmp_writer.write(both[None], [info.pts[idx]])
                        if len(panels) < 4 and idx % max(1, int(info.fps)) == 0:
                            panels.append(both)
                if writer is None:
                    raise ValueError("no restored frames to assemble")
                writer.close()
                stage = "write"
                out["restored_uri"] = _put(local, output_uri(self.output, "restored", rel), self.storage)
                if cmp_writer is not None:
                    cmp_writer.close()
                    out["comparison_uri"] = put_file_atomic(str(Path(tmp) / "cmp.mp4"),
                                                            output_uri(self.output, "comparisons", base + ".mp4"),
                                                            self.storage)
                    if panels:
                        out["strip_uri"] = write_bytes_atomic(output_uri(self.output, "comparisons", base + ".png"),
                                                              frame_strip(panels), self.storage)
            out.update({k: (math.nan if v is None else v) for k, v in stats.result().items()
                        if k in ("psnr", "ssim", "flicker", "warp_error", "ref_warp_error")})
            for seg in segments:
                sfs, spath = filesystem(seg["segment_uri"], self.storage)
                sfs.rm(spath)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields(stage, exc))
        return out
