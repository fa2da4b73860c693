"""Prior weights files: their digest is part of restore's config hash and evaluate's row ids."""
from __future__ import annotations

import numpy as np
import pytest

from operators.media import encode_png
from operators.priors.paths import shared_weights
from pipelines.config import ConfigError, from_dict
from pipelines.evaluate_grid import DatasetConfig, MethodConfig, TaskConfig, plan_grid
from pipelines.prior_files import check_prior_files, file_digest, prior_digest, prior_files
from pipelines.restore_images import RestoreImagesConfig, result_hash


def test_digest_is_sha256_prefix_and_follows_the_file(tmp_path):
    import hashlib

    w = tmp_path / "w.safetensors"
    w.write_bytes(b"one")
    assert file_digest(w) == hashlib.sha256(b"one").hexdigest()[:16]
    spec = {"name": "embedded", "weights": str(w)}
    assert prior_files(spec) == [(w, "embedded")]
    assert prior_digest(spec) == {"w.safetensors": hashlib.sha256(b"one").hexdigest()[:16]}
    assert prior_digest({"name": "gaussian"}) == {}


def test_changing_the_weights_changes_restore_hash_and_evaluate_ids(tmp_path):
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"first weights")
    prior = {"name": "embedded", "weights": str(w)}
    cfg = from_dict(RestoreImagesConfig, {"input": str(tmp_path), "prior": prior})
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(encode_png(np.zeros((8, 8, 3), np.float32)))
    grid = lambda: plan_grid(  # noqa: E731
        [DatasetConfig("d", str(tmp_path / "img"))], [TaskConfig("denoise", {"name": "denoise", "noise_sigma": 0.1})],
        [MethodConfig("m", "solver", solver={"name": "diffpir"}, prior=prior, nfe=3)], 0, 8, str(tmp_path), None)[0]
    before, ids_before = result_hash(cfg), [r["id"] for r in grid()]
    assert result_hash(cfg) == before  # stable
    w.write_bytes(b"retrained weights")
    assert result_hash(cfg) != before
    assert [r["id"] for r in grid()] != ids_before


def test_a_retrained_unfolding_changes_restore_hash_and_evaluate_ids(tmp_path):
    """ud2m reads a trained unfolding besides its prior: its digest is in the ids too (the
    shipped one when ``unfolding`` is unset; none when untrained)."""
    from pipelines.prior_files import solver_digest

    u = tmp_path / "u.safetensors"
    u.write_bytes(b"first unfolding")
    solver = {"name": "ud2m", "unfolding": str(u)}
    cfg = from_dict(RestoreImagesConfig, {"input": str(tmp_path), "solver": solver})
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(encode_png(np.zeros((8, 8, 3), np.float32)))
    grid = lambda: plan_grid(  # noqa: E731
        [DatasetConfig("d", str(tmp_path / "img"))], [TaskConfig("denoise", {"name": "denoise", "noise_sigma": 0.1})],
        [MethodConfig("m", "solver", solver=solver, prior={"name": "gaussian"}, nfe=3)], 0, 8, str(tmp_path), None)[0]
    before, ids_before = result_hash(cfg), [r["id"] for r in grid()]
    assert solver_digest(solver) == {"unfolding:u.safetensors": file_digest(u)}
    u.write_bytes(b"retrained unfolding")
    assert result_hash(cfg) != before and [r["id"] for r in grid()] != ids_before
    assert solver_digest({"name": "ud2m", "unfolding": "untrained"}) == {} == solver_digest({"name": "langevin"})


def test_dncnn_and_ffdnet_files_are_checked_at_config_time(tmp_path):
    assert prior_files({"name": "ffdnet"}) == [(shared_weights("FFDNet_color.mat"), "ffdnet")]
    assert prior_files({"name": "dncnn"}) == [(shared_weights("dncnn_25.pth"), "dncnn")]
    missing = tmp_path / "FFDNet_gray.mat"
    with pytest.raises(ConfigError, match=f"prior 'ffdnet' needs {missing}, which does not exist; set weights="):
        check_prior_files({"name": "ffdnet", "weights": str(missing)})
    with pytest.raises(ConfigError, match="GD_Color_Blind.mat"):
        check_prior_files({"name": "dncnn", "weights": str(tmp_path / "GD_Color_Blind.mat")})
    missing.write_bytes(b"")
    with pytest.raises(ConfigError, match="'prior.weights': .*FFDNet_gray.mat is not a MATLAB v7.3 MAT-file"):
        check_prior_files({"name": "ffdnet", "weights": str(missing)})  # exists, but is no MAT-file
    import h5py

    with h5py.File(missing, "w", userblock_size=512) as f:  # MATLAB v7.3's layout: HDF5 after 512 bytes
        f.create_dataset("net", data=np.zeros(2))
    check_prior_files({"name": "ffdnet", "weights": str(missing)})  # its header is what the loader reads
