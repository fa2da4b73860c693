"""Stage `segment finish`: store a restored segment for assembly and measure its windows and
its degraded input.

Writes ``<output>/_segments/<clip id>/<first frame>.npz`` (uint8 frames, uncompressed; ``lq`` too
for clips that get a comparison video); deleted once the clip is assembled. Per window: PSNR
against the reference (null without one). Per segment, over the frames it owns ([start,
stop)): sums the assembly turns into the clip's ``lq_psnr`` and ``lq_flicker``. Drops the
pixel columns so only table columns reach the driver.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import numpy as np

from actors.columns import batch_to_rows, error_fields, rows_to_batch, unpack
from actors.runtime import release_freed_memory
from operators.metrics.psnr import psnr
from pipelines.sections import StorageConfig
from pipelines.storage import join, write_bytes_atomic

PIXEL_COLUMNS = ("lq", "hq", "restored")


def segment_uri(output: str, clip_id: str, context: int) -> str:
    return join(output, "_segments", clip_id, f"{int(context):08d}.npz")


def frame_psnr(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(T,) PSNR in dB of frames in [0, 1] (same shapes)."""
    import torch

    a = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))
    b = torch.from_numpy(np.ascontiguousarray(ref.transpose(0, 3, 1, 2), dtype=np.float32))
    return psnr(a, b).numpy().reshape(-1)


def temporal_sums(v: np.ndarray, first_owned: int) -> tuple[float, float, int, int]:
    """(sum of mean |v_t - v_{t-1}|, sum of mean |v_t - 2 v_{t-1} + v_{t-2}|, counts) over the
    owned frames t >= first_owned that have the previous frame(s) in ``v``."""
    d1 = [float(np.abs(v[t] - v[t - 1]).mean()) for t in range(max(first_owned, 1), len(v))]
    d2 = [float(np.abs(v[t] - 2 * v[t - 1] + v[t - 2]).mean()) for t in range(max(first_owned, 2), len(v))]
    return sum(d1), sum(d2), len(d1), len(d2)


@dataclass
class SegmentFinishStage:
    output: str
    compare_clips: tuple[str, ...] = ()
    storage: StorageConfig = field(default_factory=StorageConfig)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = rows_to_batch([self.finish_row(r) for r in batch_to_rows(batch)])
        release_freed_memory()  # a segment's frames (actors.runtime)
        return out

    def finish_row(self, row: dict) -> dict:
        out = {k: v for k, v in row.items() if k not in PIXEL_COLUMNS}
        out.update({"segment_uri": "", "lq_psnr_sum": math.nan, "lq_change_sum": math.nan,
                    "lq_change2_sum": math.nan, "ref_change_sum": math.nan, "owned": 0, "pairs": 0, "triples": 0})
        if row.get("error_stage"):
            return out
        stage = "metrics"
        try:
            restored = unpack(row["restored"])
            lq, hq = unpack(row["lq"]).astype(np.float32), unpack(row["hq"])
            own = int(row["start"]) - int(row["context"])
            out["owned"] = len(restored) - own
            lq_change, lq_change2, out["pairs"], out["triples"] = temporal_sums(lq, own)
            out["lq_change_sum"], out["lq_change2_sum"] = lq_change, lq_change2
            windows = json.loads(str(row["windows"]))
            if hq is not None:
                ref = hq.astype(np.float32) / 255
                out["ref_change_sum"] = temporal_sums(ref, own)[0]
                if lq.shape == ref.shape:
                    out["lq_psnr_sum"] = float(frame_psnr(np.clip(lq[own:], 0, 1), ref[own:]).sum())
                per_frame = frame_psnr(restored.astype(np.float32) / 255, ref)
                for w in windows:
                    a, b = w["start"] - int(row["context"]), w["stop"] - int(row["context"])
                    w["psnr"] = float(per_frame[a:b].mean())
            out["windows"] = json.dumps(windows)
            stage = "write"
            buf = io.BytesIO()
            extra = {"lq": np.clip(lq[own:] * 255 + 0.5, 0, 255).astype(np.uint8)} \
                if str(row["clip_id"]) in self.compare_clips and lq.shape[1:] == restored.shape[1:] else {}
            np.savez(buf, restored=restored, **extra)  # uncompressed: a short-lived intermediate
            uri = segment_uri(self.output, str(row["clip_id"]), int(row["context"]))
            out["segment_uri"] = write_bytes_atomic(uri, buf.getvalue(), self.storage)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields(stage, exc))
        return out
