"""restore-images joins an existing multi-node cluster (RAY_ADDRESS) and survives losing a
worker node mid-job: every input ends as exactly one result or error row (the workers write
the shards; a write task Ray retries after its node died replaces its own shard, named after
its rows: pipelines.stages.write_rows.shard_name)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml
from PIL import Image


def _inputs(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        img = (np.cumsum(rng.normal(0, 4, (96, 96, 3)), axis=0) % 256).astype(np.uint8)
        Image.fromarray(img).save(root / f"img{i:02d}.png")
    (root / "broken.png").write_bytes(b"\x89PNG broken")


def test_job_on_cluster_survives_node_removal(tmp_path):
    from ray.cluster_utils import Cluster

    n_images = 16
    _inputs(tmp_path / "in", n_images)
    cfg = {
        "job": "restore-images", "input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
        "degradation": {"name": "sr", "scale": 2, "noise_sigma": 0.02},
        "solver": {"name": "diffpir", "nfe": 40}, "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5},
        "ray": {"actors": 2, "batch_size": 1, "num_cpus_per_actor": 0.5},
        "mlflow": {"enabled": False},
        "flush_rows": 1,  # a shard, and a progress line, per row: the node goes while rows are being written
    }
    cfg_path = tmp_path / "job.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    try:
        cluster.add_node(num_cpus=2)
        doomed = cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        exe = shutil.which("restoray") or str(Path(sys.executable).parent / "restoray")
        env = {**os.environ, "RAY_ADDRESS": cluster.address}
        proc = subprocess.Popen([exe, "run", str(cfg_path)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        started = threading.Event()

        def watch():
            for line in proc.stderr:
                lines.append(line)
                if "rows (" in line:
                    started.set()

        threading.Thread(target=watch, daemon=True).start()
        assert started.wait(timeout=240), "".join(lines[-30:])
        cluster.remove_node(doomed, allow_graceful=False)
        done_at_removal = int([l for l in lines if "rows (" in l][-1].split()[1].split("/")[0])
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, "".join(lines[-40:])
        assert done_at_removal < n_images + 1, "the node was removed only after the job had finished"
    finally:
        cluster.shutdown()
    results = pq.read_table(str(tmp_path / "out" / "results")).to_pylist()
    errors = pq.read_table(str(tmp_path / "out" / "errors")).to_pylist()
    assert len(results) + len(errors) == n_images + 1
    assert len({r["id"] for r in results} | {e["id"] for e in errors}) == n_images + 1
    assert [e["relative_path"] for e in errors] == ["broken.png"]
    assert "restore-images" in out and "results" in out
