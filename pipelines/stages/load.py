"""Stage `load`: read bytes (fsspec), decode, and in synthesize mode degrade, seeded by row id.

Stateless: used with ``map_batches``. A row that fails becomes an error row (stage, type,
message) and flows on; it is never dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from actors.columns import batch_to_rows, error_fields, no_error, pack, rows_to_batch
from operators.degradations import build_degradation
from operators.degradations.jpeg import file_tables
from operators.media import DEFAULT_MAX_PIXELS, decode_image
from operators.metrics.quality import crop_reference
from operators.seeding import make_generator
from pipelines.sections import StorageConfig
from pipelines.storage import read_bytes


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop (H, W, C) so H and W are multiples of ``scale`` (the SR convention)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


@dataclass
class LoadStage:
    degradation: dict
    synthesize: bool
    seed: int
    storage: StorageConfig = field(default_factory=StorageConfig)
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch([self.load_row(r) for r in batch_to_rows(batch)])

    def load_row(self, row: dict) -> dict:
        out = {**row, "lq": b"", "hq": b"", "width": 0, "height": 0, "grey": False,
               "degradation": json.dumps(self.degradation), **no_error()}
        stage = "read"
        try:
            data = read_bytes(str(row["source_uri"]), self.storage)
            stage = "decode"
            img = decode_image(data, self.max_pixels)
            out["grey"] = img.grey
            stage = "degrade"
            op = build_degradation(self.degradation)
            scale = int(getattr(op, "scale", 1) or 1)
            x = torch.from_numpy(np.ascontiguousarray(img.pixels.transpose(2, 0, 1)))[None]
            if self.synthesize:
                hq = mod_crop(img.pixels, scale)
                x = x[..., : hq.shape[0], : hq.shape[1]]
                op = op.bind(tuple(x.shape), make_generator(self.seed, row["id"], "bind"))
                y = op.measure(x, make_generator(self.seed, row["id"], "noise"))
                out["hq"] = pack(hq)
            else:
                y = x
                op = op.bind(tuple(op.input_shape(tuple(y.shape))), None)  # concrete (validated): no draws
                if op.name == "jpeg" and op.tables is None and (found := file_tables(data)):
                    op = replace(op, **found)  # the file's own tables and subsampling: its QCS
                ref_uri = row.get("reference_uri") or ""
                if ref_uri:
                    stage = "reference"
                    ref = decode_image(read_bytes(str(ref_uri), self.storage), self.max_pixels).pixels
                    stage = "metrics"  # PSNR/SSIM need the reference at the restored size
                    out["hq"] = pack(crop_reference(ref, op.input_shape(tuple(y.shape))[-2:], scale))
            out["lq"] = pack(y[0].permute(1, 2, 0).numpy())
            h, w = op.input_shape(tuple(y.shape))[-2:]
            out["height"], out["width"] = int(h), int(w)
            out["degradation"] = json.dumps(op.spec())
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields(stage, exc))
        return out
