"""restore-images end to end on a real local Ray: outputs, error rows, resume, MLflow."""
from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.config import ConfigError, from_dict
from pipelines.job import run_job
from pipelines.restore_images import RestoreImagesConfig, RestoreImagesJob, run
from pipelines.stages.finish import output_name
from pipelines.tables import read_table
from tests.conftest import mlflow_store
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
        "mlflow": {"tracking_uri": mlflow_store(tmp_path), "experiment": "test"},
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
        assert (r["samples"], r["estimate"], r["std_mean"], r["std_uri"]) == (1, "single", None, "")
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


def test_samples_write_the_std_column_image_and_labelled_grid(ray_local, tmp_path):
    from PIL import Image

    from operators.comparison import HEADER_PX

    root = tmp_path / "in"
    root.mkdir()
    yy, xx = np.mgrid[0:32, 0:32]
    img = 0.5 + 0.3 * np.sin(xx / 3)[..., None] * np.cos(yy / 4)[..., None] * np.ones(3)
    Image.fromarray((img * 255).astype(np.uint8)).save(root / "a.png")
    solver = {"name": "diffpir", "nfe": 3, "samples": 2}
    cfg = _config(tmp_path, root, tmp_path / "out", solver=solver, mlflow={"enabled": False})
    run(cfg)
    (r,) = _table(tmp_path / "out" / "results")
    assert (r["samples"], r["estimate"]) == (2, "mean") and r["std_mean"] > 0
    assert r["std_uri"] == str(tmp_path / "out" / "std" / "a.png")
    with Image.open(r["std_uri"]) as std:
        assert std.mode == "L" and std.size == (32, 32) and np.asarray(std).max() > 0
    with Image.open(tmp_path / "out" / "comparisons" / "a.png") as g:
        grid = np.asarray(g.convert("RGB"))
    # input | restored (mean of 2) | posterior std | reference, each 160 px wide under a header
    assert grid.shape == (HEADER_PX + 160, 4 * 160 + 3 * 4, 3)
    for k in range(4):
        assert (grid[:HEADER_PX, k * 164:k * 164 + 160] < 128).any()  # the header's text


class DriverWritten(RestoreImagesJob):
    """The tables as they were written before issue 10: full rows to the driver, which writes."""

    def row_function(self, chash):
        return None


class Watched(RestoreImagesJob):
    """Keeps what reaches the driver."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.seen: list[dict] = []

    def on_result(self, row):
        self.seen.append(row)


def _comparable(table, timing: str, out: str) -> list[dict]:
    """Rows by id, the timing column blanked, the output folder and object addresses in
    messages (``<_io.BytesIO object at 0x...>``) made neutral."""
    rows = [{**r, timing: None, "restored_uri": str(r.get("restored_uri")).replace(out, "OUT"),
             "message": re.sub("0x[0-9a-f]+", "0x", str(r.get("message")))} for r in table.to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def test_workers_write_the_tables_the_driver_wrote_and_send_back_ids_only(ray_local, tmp_path, image_folder):
    root, valid, broken = image_folder
    cfg = lambda out: _config(tmp_path, root, tmp_path / out, comparisons=0, mlflow={"enabled": False},  # noqa: E731
                              flush_rows=3)
    watched = Watched(cfg("workers"))
    s = run_job(watched)
    run_job(DriverWritten(cfg("driver")))
    assert (s.done, s.errors) == (len(valid), len(broken))
    assert {k for r in watched.seen for k in r} == {"id", "status", "error_kind"}  # no pixel, PNG or table column
    done = sorted(r["id"] for r in _table(tmp_path / "workers" / "results"))
    assert sorted(str(r["id"]) for r in watched.seen) == done
    for name, timing in (("results", "seconds"), ("errors", "recorded_at")):
        w, d = (read_table(str(tmp_path / out), name) for out in ("workers", "driver"))
        assert w.schema == d.schema, name  # column order and types too
        assert _comparable(w, timing, str(tmp_path / "workers")) == _comparable(d, timing, str(tmp_path / "driver"))
        assert all(pq.read_table(f).num_rows <= 3 for f in (tmp_path / "workers" / name).glob("*.parquet"))


@pytest.mark.parametrize("solver, needle", [
    ({"name": "diffpir", "samples": 0}, "'solver.samples': samples must be an integer >= 1"),
    ({"name": "diffpir", "samples": 2.0}, "'solver.samples'"),
    ({"name": "diffpir", "samples": 2, "estimate": "median"}, "'solver.estimate'"),
    ({"name": "reld", "samples": 2}, "'solver.samples': solver 'reld' is deterministic"),
    ({"name": "diffpir", "init": {"name": "swinir"}}, "'solver.init': unknown init estimator 'swinir'"),
    ({"name": "diffpir", "init": {"name": "imdn", "weights": "/nowhere/IMDN_x4.pth"}},
     "'solver.init': IMDN weights not found: /nowhere/IMDN_x4.pth"),
])
def test_posterior_keys_are_validated_naming_the_key(tmp_path, solver, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        _config(tmp_path, tmp_path / "in", tmp_path / "out", solver=solver)  # output outside the input


def test_ud2m_with_the_shipped_unfolding_restores_real_crops(ray_local, tmp_path):
    """Issue 11, item 6: `solver: {name: ud2m, nfe: 6}` in restore-images loads the shipped
    unfolding on the embedded prior it was trained on and deblurs real CBSD68 crops."""
    from PIL import Image

    from tests.operators.priors._data import SHARED_DATA, center_crop, load_image

    root = tmp_path / "in"
    root.mkdir()
    for f in sorted((SHARED_DATA / "eval" / "CBSD68").glob("*.png"))[:2]:
        crop = center_crop(load_image(f), 96)[0].permute(1, 2, 0).numpy()
        Image.fromarray((crop * 255).round().astype(np.uint8)).save(root / f.name)
    out = tmp_path / "out"
    cfg = _config(tmp_path, root, out, degradation={"name": "blur", "kind": "gaussian", "sigma": 1.5, "noise_sigma": 0.01},
                  solver={"name": "ud2m", "nfe": 6}, prior={"name": "embedded"}, mlflow={"enabled": False})
    run(cfg)
    results = _table(out / "results")
    assert len(results) == 2
    for r in results:
        assert (r["solver"], r["nfe"]) == ("ud2m", 6)
        assert r["psnr"] > r["lq_psnr"] + 1.0, (r["relative_path"], r["psnr"], r["lq_psnr"])
