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


def _hash_and_grid_ids(tmp_path, solver: dict, prior: dict, task: dict | None = None):
    """(restore-images config hash, evaluate row ids of a one-image, one-task grid: denoising
    unless ``task`` names the degradation) as functions of the files on disk now."""
    cfg = from_dict(RestoreImagesConfig, {"input": str(tmp_path), "solver": solver, "prior": prior})
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(encode_png(np.zeros((8, 8, 3), np.float32)))
    task = TaskConfig("t", task or {"name": "denoise", "noise_sigma": 0.1})
    method = MethodConfig("m", "solver", solver=solver, prior=prior, nfe=3)
    ids = lambda: [r["id"] for r in plan_grid([DatasetConfig("d", str(tmp_path / "img"))], [task], [method],  # noqa: E731
                                              0, 8, str(tmp_path), None)[0]]
    return lambda: result_hash(cfg), ids


def test_changing_the_weights_changes_restore_hash_and_evaluate_ids(tmp_path):
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"first weights")
    restore_hash, grid_ids = _hash_and_grid_ids(tmp_path, {"name": "diffpir"}, {"name": "embedded", "weights": str(w)})
    before, ids_before = restore_hash(), grid_ids()
    assert restore_hash() == before  # stable
    w.write_bytes(b"retrained weights")
    assert restore_hash() != before
    assert grid_ids() != ids_before


def test_a_retrained_unfolding_changes_restore_hash_and_evaluate_ids(tmp_path):
    """ud2m reads a trained unfolding besides its prior: its digest is in the ids too (the
    shipped one when ``unfolding`` is unset; none when untrained)."""
    from pipelines.prior_files import solver_digest

    u = tmp_path / "u.safetensors"
    u.write_bytes(b"first unfolding")
    solver = {"name": "ud2m", "unfolding": str(u)}
    restore_hash, grid_ids = _hash_and_grid_ids(tmp_path, solver, {"name": "gaussian"})
    before, ids_before = restore_hash(), grid_ids()
    assert solver_digest(solver) == {"unfolding:u.safetensors": file_digest(u)}
    u.write_bytes(b"retrained unfolding")
    assert restore_hash() != before and grid_ids() != ids_before
    assert solver_digest({"name": "ud2m", "unfolding": "untrained"}) == {} == solver_digest({"name": "langevin"})


def test_blind_solvers_networks_are_in_the_digest(tmp_path):
    """conditional / irsde hash their network, indigo its INN (picked by inn and the denoiser's
    space) and, on its default conditional model, that model too; the shipped files when unnamed."""
    from operators.priors.paths import WEIGHTS_DIR
    from pipelines.prior_files import solver_digest, solver_files

    shipped = lambda name: WEIGHTS_DIR / f"{name}.safetensors"
    assert solver_files({"name": "conditional"}) == {"weights": shipped("blind_conditional")}
    assert solver_files({"name": "irsde", "weights": "untrained"}) == {}
    assert solver_files({"name": "indigo"}) == {"inn": shipped("blind_pixel_inn"),
                                                "conditional": shipped("blind_conditional")}
    assert solver_files({"name": "indigo", "inn": "latent"})["inn"] == shipped("blind_latent_inn_image")
    latent = solver_files({"name": "indigo", "inn": "latent", "denoiser": "prior"}, {"name": "embedded_latent"})
    assert latent == {"inn": shipped("blind_latent_inn")}
    inn = tmp_path / "inn.safetensors"
    inn.write_bytes(b"first INN")
    solver = {"name": "indigo", "weights": str(inn), "conditional_weights": "untrained"}
    restore_hash, grid_ids = _hash_and_grid_ids(tmp_path, solver, {"name": "gaussian"}, {"name": "realesrgan", "scale": 4})
    before, ids_before = restore_hash(), grid_ids()
    assert solver_digest(solver) == {"inn:inn.safetensors": file_digest(inn)} and len(ids_before) == 1
    inn.write_bytes(b"retrained INN")
    assert restore_hash() != before and grid_ids() != ids_before


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
