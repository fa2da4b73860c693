"""Files of a job's output that go to MLflow as artifacts (tables and comparison grids)."""
from __future__ import annotations

from pipelines.sections import StorageConfig
from pipelines.storage import filesystem, join

MAX_ARTIFACT_BYTES = 64 * 1024 * 1024


def collect_artifacts(output: str, storage: StorageConfig, folders=("results", "errors", "comparisons")) -> dict[str, bytes]:
    """{artifact path: bytes} for Parquet shards and grids under ``output`` (size-capped)."""
    out: dict[str, bytes] = {}
    total = 0
    for folder in folders:
        fs, path = filesystem(join(output, folder), storage)
        if not fs.exists(path):
            continue
        for p in sorted(fs.find(path)):
            # the path below the folder: comparisons mirror the inputs' subfolders
            name = p[len(path.rstrip("/")) + 1:] if p.startswith(path.rstrip("/") + "/") else p.rsplit("/", 1)[-1]
            if name.rsplit("/", 1)[-1].startswith(".tmp-"):
                continue
            size = fs.size(p)
            if total + size > MAX_ARTIFACT_BYTES:
                continue
            with fs.open(p, "rb") as f:
                out[f"{folder}/{name}"] = f.read()
            total += size
    return out
