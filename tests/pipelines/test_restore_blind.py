"""Blind restoration in restore-images on a real local Ray: real LQ photos with no operator
(`degradation: {name: blind, scale: 4}`, synthesize: false), and clean photos degraded by the
Real-ESRGAN chain that the blind solver never sees (synthesize: true)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.config import ConfigError, from_dict
from pipelines.restore_images import RestoreImagesConfig, run
from pipelines.stages.finish import output_name

SOLVER = {"name": "indigo", "nfe": 3, "weights": "untrained"}  # the plain Haar INN on the shipped conditional model


def _photos(root, size, n=2):
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for i in range(n):
        base = rng.random((size[0] // 4 + 1, size[1] // 4 + 1, 3))
        img = Image.fromarray((base * 255).astype(np.uint8)).resize(size[::-1], Image.BICUBIC)
        img.save(root / f"p{i}.png")
    return root


def _cfg(tmp_path, root, **kw):
    data = {"input": str(root), "output": str(tmp_path / "out"), "seed": 2, "solver": SOLVER,
            "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5}, "ray": {"actors": 1, "batch_size": 2},
            "mlflow": {"enabled": False}, **kw}
    cfg = from_dict(RestoreImagesConfig, data)
    cfg.validate()
    return cfg


def test_real_lq_photos_without_an_operator(ray_local, tmp_path):
    root = _photos(tmp_path / "lq", (18, 22))
    summary = run(_cfg(tmp_path, root, synthesize=False, degradation={"name": "blind", "scale": 4}))
    rows = pq.read_table(str(tmp_path / "out" / "results")).to_pylist()
    assert summary.total_errors == 0 and len(rows) == 2
    for r in rows:
        assert (r["width"], r["height"]) == (88, 72)  # x4 of the LQ input
        assert r["psnr"] is None or np.isnan(r["psnr"])  # no reference
        restored = Image.open(tmp_path / "out" / "restored" / output_name(r["relative_path"]))
        assert restored.size == (88, 72)
        assert json.loads(r["degradation"]) == {"name": "blind", "scale": 4, "noise_sigma": 0.0}


def test_realesrgan_degraded_photos_restored_blind(ray_local, tmp_path):
    root = _photos(tmp_path / "hq", (64, 48))
    run(_cfg(tmp_path, root, synthesize=True, degradation={"name": "realesrgan", "scale": 4}))
    rows = pq.read_table(str(tmp_path / "out" / "results")).to_pylist()
    assert len(rows) == 2
    for r in rows:
        assert (r["width"], r["height"]) == (48, 64) and np.isfinite(r["psnr"]) and np.isfinite(r["lq_psnr"])
        assert json.loads(r["degradation"])["chain"]  # the sampled chain is recorded, the solver never saw it


def test_blind_needs_a_blind_solver_and_real_lq(tmp_path):
    root = _photos(tmp_path / "lq", (16, 16), n=1)
    with pytest.raises(ConfigError, match="blind solver: conditional, indigo, irsde"):
        _cfg(tmp_path, root, synthesize=False, degradation={"name": "blind", "scale": 4},
             solver={"name": "diffpir", "nfe": 3})
    with pytest.raises(ConfigError, match="synthesize: true cannot degrade"):
        _cfg(tmp_path, root, synthesize=True, degradation={"name": "blind", "scale": 4})


@pytest.mark.parametrize("solver,nfe,samples", [("conditional", 1, 1), ("irsde", 5, 4)])
def test_a_blind_solver_without_nfe_runs_its_measured_default(ray_local, tmp_path, solver, nfe, samples):
    """conditional: 1 NFE; irsde: the mean of 4 posterior samples of 5 NFE (RUN_DEFAULTS), the
    shipped weights; what ran is what the rows record."""
    root = _photos(tmp_path / "lq", (12, 10), n=1)
    run(_cfg(tmp_path, root, synthesize=False, degradation={"name": "blind", "scale": 4}, solver={"name": solver}))
    (row,) = pq.read_table(str(tmp_path / "out" / "results")).to_pylist()
    assert (row["nfe"], row["samples"]) == (nfe, samples) and (row["width"], row["height"]) == (40, 48)
