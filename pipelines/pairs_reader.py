"""Stream synth-pairs shards back as torch tensors for training (no Ray needed).

``PairsDataset(uri)`` is a ``torch.utils.data.IterableDataset``: it lists
``<uri>/pairs/part-*.parquet`` (or the shards of ``uri`` itself when it is the pairs folder),
gives each DataLoader worker every ``num_workers``-th shard, and reads one shard at a time
(pyarrow + fsspec, record batches of ``read_rows``), so memory stays bounded by one shard.
Each item: ``{"hq": (C, H, W) float32, "lq": (C', h, w) float32, "params": dict, "id": str}``;
``build_degradation(item["params"])`` rebuilds the operator that made ``lq`` from ``hq``.
Batch with ``DataLoader(ds, batch_size=B, collate_fn=collate_pairs, num_workers=W)``.
"""
from __future__ import annotations

import json
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from operators.media import decode_image
from pipelines.sections import StorageConfig
from pipelines.storage import filesystem, join

COLUMNS = ["id", "hq", "lq", "params", "hq_shape", "lq_shape", "config_hash"]


def png_tensor(data: bytes, channels: int = 3) -> torch.Tensor:
    """PNG bytes -> (channels, H, W) float32 in [0, 1] (exact k / 255 values)."""
    px = decode_image(bytes(data)).pixels[..., :channels]
    return torch.from_numpy(np.ascontiguousarray(px.transpose(2, 0, 1)))


def list_shards(uri: str, storage: StorageConfig | None = None) -> list[str]:
    """Sorted full paths of the pair shards under a job output (or its pairs/ folder)."""
    fs, path = filesystem(uri, storage)
    if fs.isdir(path.rstrip("/") + "/pairs"):
        fs, path = filesystem(join(uri, "pairs"), storage)
    if not fs.exists(path):
        raise FileNotFoundError(f"no synth-pairs output at {uri}")
    return sorted(p for p in fs.find(path) if p.endswith(".parquet") and "/.tmp-" not in p)


class PairsDataset(IterableDataset):
    """Pairs from synth-pairs shards. ``shuffle_shards`` permutes the shard order from
    ``seed`` + the epoch (``set_epoch``); rows within a shard keep their order.
    ``config_hash`` keeps only rows of one config when several share an output."""

    def __init__(self, uri: str, storage: StorageConfig | None = None, shuffle_shards: bool = False,
                 seed: int = 0, config_hash: str | None = None, read_rows: int = 64):
        super().__init__()
        self.uri, self.storage = uri, storage or StorageConfig()
        self.shuffle_shards, self.seed, self.config_hash = shuffle_shards, seed, config_hash
        self.read_rows, self.epoch = read_rows, 0
        self.shards = list_shards(uri, self.storage)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def worker_shards(self) -> list[str]:
        """This worker's shards: the (shuffled) list split round-robin across workers."""
        shards = list(self.shards)
        if self.shuffle_shards:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            shards = [shards[i] for i in torch.randperm(len(shards), generator=g).tolist()]
        info = get_worker_info()
        return shards if info is None else shards[info.id::info.num_workers]

    def __iter__(self) -> Iterator[dict]:
        fs, _ = filesystem(self.uri, self.storage)
        for shard in self.worker_shards():
            with fs.open(shard, "rb") as f:
                pf = pq.ParquetFile(f)
                for batch in pf.iter_batches(batch_size=self.read_rows, columns=COLUMNS):
                    yield from self._rows(batch.to_pylist())

    def _rows(self, rows: list[dict]) -> Iterator[dict]:
        for r in rows:
            if self.config_hash is not None and r["config_hash"] != self.config_hash:
                continue
            yield {"hq": png_tensor(r["hq"], r["hq_shape"][0]), "lq": png_tensor(r["lq"], r["lq_shape"][0]),
                   "params": json.loads(r["params"]), "id": r["id"]}


def collate_pairs(items: list[dict]) -> dict:
    """DataLoader ``collate_fn``: hq (B, C, H, W) and lq stacked (shapes must agree within a
    batch, i.e. one crop size and one scale), params and id kept as lists."""
    return {"hq": torch.stack([it["hq"] for it in items]), "lq": torch.stack([it["lq"] for it in items]),
            "params": [it["params"] for it in items], "id": [it["id"] for it in items]}


class EndlessPairs:
    """Items of a :class:`PairsDataset` pass after pass, the shards reshuffled every pass (for
    training loops that count steps, not epochs); an output with no pairs raises."""

    def __init__(self, uri: str, seed: int = 0):
        self.ds, self.epoch = PairsDataset(uri, shuffle_shards=True, seed=seed), 0
        self.items: Iterator[dict] = iter(self.ds)

    def next(self) -> dict:
        for _ in range(2):
            try:
                return next(self.items)
            except StopIteration:
                self.epoch += 1
                self.ds.set_epoch(self.epoch)
                self.items = iter(self.ds)
        raise ValueError(f"no pairs in the synth-pairs output {self.ds.uri}")
