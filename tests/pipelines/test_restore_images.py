"""restore-images end to end on a real local Ray: outputs, error rows, resume, MLflow."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from pipelines.config import from_dict
from pipelines.restore_images import RestoreImagesConfig, run
from pipelines.stages.finish import output_name
from tests.pipelines.conftest import make_valid_images

MAX_PIXELS = 1_000_000  # the 1200x1000 "bomb" is over it


def _config(tmp_path, input_uri, output, **kw) -> RestoreImagesConfig:
    data = {
        "input": str(input_uri), "output": str(output), "seed": 3,
        "degradation": {"name": "sr", "scale": 2, "noise_sigma": 0.02},
        "solver": {"name": "diffpir", "nfe": 3},
        "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5},
        "max_pixels": MAX_PIXELS, "comparisons": 6,  # the first 6 inputs by path: 2 valid
        "ray": {"actors": 1, "batch_size": 2},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "test"},
    }
    data.update(kw)
    cfg = from_dict(RestoreImagesConfig, data)
    cfg.validate()
    return cfg


def _table(path):
    return pq.read_table(str(path)).to_pylist()


def test_job_outputs_errors_and_mlflow(ray_local, tmp_path, image_folder):
    root, valid, broken = image_folder
    out = tmp_path / "out"
    summary = run(_config(tmp_path, root, out))
    results, errors = _table(out / "results"), _table(out / "errors")
    assert len(results) + len(errors) == len(valid) + len(broken)
    assert sorted(r["relative_path"] for r in results) == valid
    assert sorted(e["relative_path"] for e in errors) == broken
    by_path = {e["relative_path"]: e for e in errors}
    assert "too large" in by_path["bomb.png"]["message"]
    assert "empty" in by_path["empty.png"]["message"]
    assert all(e["stage"] == "decode" and e["error_type"] == "MediaError" for e in errors)
    for r in results:
        assert r["solver"] == "diffpir" and r["prior"] == "gaussian" and r["nfe"] == 3 and r["seed"] == 3
        assert np.isfinite(r["psnr"]) and np.isfinite(r["lq_psnr"]) and 0 < r["ssim"] <= 1
        assert r["width"] % 2 == 0 and r["height"] % 2 == 0  # mod-cropped for x2
        assert json.loads(r["degradation"])["name"] == "sr"
        assert (out / "restored" / output_name(r["relative_path"])).is_file()
    grey = next(r for r in results if r["relative_path"] == "sub/grey_odd.png")
    assert (grey["width"], grey["height"]) == (28, 36)
    assert sorted(p.name for p in (out / "comparisons").glob("*.png")) == ["cmyk.jpg.png", "deep16.png"]
    assert summary.total_results == len(valid) and summary.total_errors == len(broken)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=summary.tracking_uri)
    run_info = client.get_run(summary.run_id)
    assert run_info.data.params["solver.name"] == "diffpir"
    assert run_info.data.metrics["results"] == len(valid)
    assert abs(run_info.data.metrics["mean_psnr"] - np.mean([r["psnr"] for r in results])) < 1e-6
    arts = {a.path for a in client.list_artifacts(summary.run_id)}
    assert {"results", "errors", "comparisons"} <= arts


def test_rerun_is_deterministic_and_resumes(ray_local, tmp_path):
    root = tmp_path / "in"
    make_valid_images(root)
    out = tmp_path / "out"
    cfg = _config(tmp_path, root, out, mlflow={"enabled": False})
    first = run(cfg)
    assert first.done == 5
    again = run(cfg)  # nothing left to do
    assert again.done == 0 and again.skipped == 5 and again.total_results == 5
    (root / "later").mkdir()
    make_valid_images(root / "later", seed=1)
    third = run(cfg)
    assert third.done == 5 and third.skipped == 5 and third.total_results == 10
    # same seed, fresh output: identical restorations
    other = run(_config(tmp_path, root, tmp_path / "out2", mlflow={"enabled": False}))
    a = {r["id"]: r["psnr"] for r in _table(out / "results")}
    b = {r["id"]: r["psnr"] for r in _table(tmp_path / "out2" / "results")}
    assert a == b and other.total_results == 10
    # a changed solver config is a different config hash: nothing is skipped
    changed = run(_config(tmp_path, root, out, mlflow={"enabled": False}, solver={"name": "diffpir", "nfe": 2}))
    assert changed.done == 10 and changed.skipped == 0
