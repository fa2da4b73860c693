"""restore-images reads from and writes to a real S3 API (moto's server on loopback)."""
from __future__ import annotations

import io

import pyarrow.parquet as pq
import s3fs

from pipelines.config import from_dict
from pipelines.restore_images import RestoreImagesConfig, run
from tests.conftest import mlflow_store
from tests.pipelines.conftest import make_valid_images


def test_job_from_bucket_to_bucket(ray_local, s3_server, tmp_path):
    fs = s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing")
    fs.mkdir("photos")
    local = tmp_path / "src"
    names = make_valid_images(local)
    for n in names:
        fs.put(str(local / n), f"photos/in/{n}")
    fs.pipe("photos/in/broken.png", b"not a png")
    cfg = from_dict(RestoreImagesConfig, {
        "input": "s3://photos/in/**/*.png", "output": "s3://photos/out",
        "degradation": {"name": "denoise", "noise_sigma": 0.05},
        "solver": {"name": "diffpir", "nfe": 2}, "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5},
        "storage": {"endpoint_url": s3_server}, "ray": {"actors": 1, "batch_size": 2},
        "mlflow": {"tracking_uri": mlflow_store(tmp_path)},
    })
    summary = run(cfg)
    pngs = [n for n in names if n.endswith(".png")]
    assert summary.total_results == len(pngs) and summary.total_errors == 1
    fs.invalidate_cache()
    shards = fs.glob("photos/out/results/*.parquet")
    rows = [r for s in shards for r in pq.read_table(io.BytesIO(fs.cat(s))).to_pylist()]
    assert sorted(r["relative_path"] for r in rows) == sorted(pngs)
    assert all(r["source_uri"].startswith("s3://photos/in/") for r in rows)
    for r in rows:
        assert r["restored_uri"].startswith("s3://photos/out/restored/") and fs.exists(r["restored_uri"])
    assert len(fs.glob("photos/out/errors/*.parquet")) == 1
    text = " ".join(str(v) for r in rows for v in r.values())
    assert "testing" not in text  # no credentials in the table
