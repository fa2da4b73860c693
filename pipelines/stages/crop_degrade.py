"""Stage `crop_degrade` (synth-pairs): read + decode one image, cut its random crops, degrade each.

Stateless, used with ``map_batches``: an input row is one file with the crop indices still
to do; it returns one row per crop (a pair, or an error row: it is never dropped). Every
random draw of crop ``id`` comes from ``make_generator(seed, id, <purpose>)``:
``"crop"`` (box), ``"choice"`` (which spec of a list), ``"bind"`` (the degradation's random
parameters, via ``sample_degradation``), ``"noise"`` (``measure``'s noise), so a crop's
bytes depend only on (seed, source_uri, crop index, config), never on batching or order.

Choices: the degradation is applied to the 8-bit-quantized HQ crop (the stored ``hq`` is
exactly what was degraded); ``lq`` is the measurement clipped to [0, 1] and quantized to
8-bit PNG (grey PNG for one-channel measurements, e.g. colorize). Images smaller than
``crop_size`` give error rows (stage ``crop``), never padded or resized pairs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from actors.columns import batch_to_rows, error_fields, no_error, rows_to_batch
from operators.degradations import Degradation, sample_degradation
from operators.media import DEFAULT_MAX_PIXELS, decode_image, encode_png
from operators.seeding import derive_seed, make_generator
from pipelines.sections import StorageConfig
from pipelines.storage import read_bytes


def crop_id(source_uri: str, crop_index: int) -> str:
    """Stable id of a crop: a hash of its source URI and crop index (not of the seed)."""
    return f"{derive_seed(0, source_uri, 'crop', int(crop_index)):016x}"


def crop_box(seed: int, rid: str, height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of a ``size`` x ``size`` crop, uniform over the valid positions."""
    g = make_generator(seed, rid, "crop")
    top = int(torch.randint(height - size + 1, (), generator=g))
    left = int(torch.randint(width - size + 1, (), generator=g))
    return top, left


def sample_operator(specs: list[dict], shape: tuple[int, ...], seed: int, rid: str) -> Degradation:
    """The concrete operator for crop ``rid``: a spec picked uniformly from ``specs``, its
    random parameters drawn (``sample``) and bound to ``shape`` (``bind``)."""
    k = 0 if len(specs) == 1 else int(torch.randint(len(specs), (), generator=make_generator(seed, rid, "choice")))
    options = dict(specs[k])
    name = options.pop("name")
    return sample_degradation(name, make_generator(seed, rid, "bind"), tuple(shape), **options)


def to_png(t: torch.Tensor) -> bytes:
    """(C, H, W) in [0, 1] (clipped) -> 8-bit PNG: RGB for C = 3, grey for C = 1."""
    arr = t.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        return encode_png(arr[..., 0])
    if arr.shape[2] != 3:
        raise ValueError(f"cannot store a {arr.shape[2]}-channel measurement as PNG")
    return encode_png(arr)


@dataclass
class CropDegradeStage:
    degradations: list[dict]
    crop_size: int
    seed: int
    storage: StorageConfig = field(default_factory=StorageConfig)
    max_pixels: int = DEFAULT_MAX_PIXELS
    torch_threads: int | None = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        out = []
        for row in batch_to_rows(batch):
            out.extend(self.file_rows(row))
        return rows_to_batch(out)

    def file_rows(self, row: dict) -> list[dict]:
        """All crop rows of one input file (``row["crops"]``: comma-separated crop indices)."""
        uri, rel = str(row["source_uri"]), str(row["relative_path"])
        indices = [int(i) for i in str(row["crops"]).split(",")]
        stage = "read"
        try:
            data = read_bytes(uri, self.storage)
            stage = "decode"
            pixels = decode_image(data, self.max_pixels).pixels
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row per crop
            return [self.empty_row(uri, rel, i) | error_fields(stage, exc) for i in indices]
        return [self.crop_row(pixels, uri, rel, i) for i in indices]

    def empty_row(self, uri: str, rel: str, index: int) -> dict:
        return {"id": crop_id(uri, index), "source_uri": uri, "relative_path": rel, "crop_index": index,
                "top": 0, "left": 0, "height": 0, "width": 0, "hq": b"", "lq": b"", "params": "",
                "hq_shape": "", "lq_shape": "", **no_error()}

    def crop_row(self, pixels: np.ndarray, uri: str, rel: str, index: int) -> dict:
        out = self.empty_row(uri, rel, index)
        rid, s = out["id"], self.crop_size
        stage = "crop"
        try:
            h, w = pixels.shape[:2]
            if h < s or w < s:
                raise ValueError(f"image {w}x{h} is smaller than crop_size {s}")
            top, left = crop_box(self.seed, rid, h, w, s)
            hq_png = encode_png(pixels[top:top + s, left:left + s])
            hq = torch.from_numpy(decode_image(hq_png).pixels.transpose(2, 0, 1).copy())[None]
            out.update(top=top, left=left, height=s, width=s)
            stage = "degrade"
            op = sample_operator(self.degradations, tuple(hq.shape), self.seed, rid)
            y = op.measure(hq, make_generator(self.seed, rid, "noise"))[0]
            stage = "encode"
            out.update(hq=hq_png, lq=to_png(y), params=json.dumps(op.spec(), sort_keys=True),
                       hq_shape=json.dumps(list(hq.shape[1:])), lq_shape=json.dumps(list(y.shape)))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields(stage, exc))
        return out
