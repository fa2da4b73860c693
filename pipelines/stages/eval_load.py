"""Stage `eval_load` (evaluate): read + decode one image, centre-crop it, degrade it for the
row's task. Stateless (``map_batches``); a failing row becomes an error row.

The degradation of an (image, task) is drawn from ``make_generator(seed, image_id, task,
"bind")`` (mask, random kernel) and ``(..., "noise")``, never from the method, so every
method of the grid restores exactly the same y.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from actors.columns import batch_to_rows, error_fields, no_error, pack, rows_to_batch
from operators.degradations import build_degradation
from operators.media import DEFAULT_MAX_PIXELS, decode_image
from operators.seeding import make_generator
from pipelines.sections import StorageConfig
from pipelines.stages.load import mod_crop
from pipelines.storage import read_bytes


def center_crop(img: np.ndarray, size: int | None) -> np.ndarray:
    """(H, W, C) -> the central min(size, H) x min(size, W) window; None keeps the image."""
    if size is None or size < 0:
        return img
    h, w = img.shape[:2]
    th, tw = min(size, h), min(size, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[top:top + th, left:left + tw]


def degrade(hq: np.ndarray, spec: dict, seed: int, image_id: str, task: str) -> tuple[torch.Tensor, dict]:
    """(y (1, C, h, w), the bound operator's spec) for the (image, task) pair."""
    x = torch.from_numpy(np.ascontiguousarray(hq.transpose(2, 0, 1)))[None]
    op = build_degradation(spec).bind(tuple(x.shape), make_generator(seed, image_id, task, "bind"))
    return op.measure(x, make_generator(seed, image_id, task, "noise")), op.spec()


@dataclass
class EvalLoadStage:
    seed: int
    mod: int = 8
    storage: StorageConfig = field(default_factory=StorageConfig)
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch([self.load_row(r) for r in batch_to_rows(batch)])

    def load_row(self, row: dict) -> dict:
        out = {**row, "lq": b"", "hq": b"", "degradation": "", "width": 0, "height": 0, **no_error()}
        stage = "read"
        try:
            data = read_bytes(str(row["source_uri"]), self.storage)
            stage = "decode"
            pixels = decode_image(data, self.max_pixels).pixels
            stage = "degrade"
            hq = mod_crop(center_crop(pixels, int(row["crop"])), self.mod)
            y, spec = degrade(hq, json.loads(str(row["task_spec"])), self.seed, str(row["image_id"]), str(row["task"]))
            out.update(hq=pack(hq), lq=pack(y[0].permute(1, 2, 0).numpy()), degradation=json.dumps(spec),
                       height=int(hq.shape[0]), width=int(hq.shape[1]))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields(stage, exc))
        return out
