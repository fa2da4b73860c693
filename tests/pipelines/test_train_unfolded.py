"""train-unfolded: the operator family and Parquet pair sources, config checks, and the job end to
end on a local Ray (2 steps) writing an unfolding that the ud2m solver loads. Its loop resumes
exactly: tests/pipelines/training/test_resume.py (Ray Train's local mode)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from operators.degradations import Noise, SuperResolution, build_degradation
from operators.media import encode_png
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, save_edm_unet
from operators.solvers import get_solver, solver_config
from pipelines.config import ConfigError, from_dict
from pipelines.train_unfolded import FAMILY, TrainUnfoldedConfig, run
from pipelines.training.unfolded_data import ParquetBatches, sample_operator
from tests.conftest import mlflow_store

TINY_UNET = dict(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4)


def _images(root, n=3):
    rng = np.random.default_rng(0)
    root.mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(root / f"{i}.png")
    return str(root)


def _prior(path):
    torch.manual_seed(0)  # test fixture only: nn layers initialise from the global RNG
    save_edm_unet(EDMUNet(EDMUNetConfig(**TINY_UNET)), path)
    return {"name": "embedded", "weights": str(path)}


def _cfg(tmp_path, **kw):
    base = {"prior": _prior(tmp_path / "base.safetensors"), "data": _images(tmp_path / "data"), "patch": 32,
            "batch_size": 2, "steps": 3, "log_every": 1, "checkpoint_every": 1, "warmup_steps": 1, "val_images": 2,
            "unfolding": {"inner_steps": 2, "lora_rank": 2}, "nfe": 4,
            "output": str(tmp_path / "u.safetensors"), "checkpoint_dir": str(tmp_path / "ckpt"),
            "mlflow": {"tracking_uri": mlflow_store(tmp_path, "m.db")}, **kw}
    cfg = from_dict(TrainUnfoldedConfig, base)
    cfg.validate()
    return cfg


def test_family_draws_every_operator_with_its_ranges():
    g = torch.Generator().manual_seed(0)
    ops = [sample_operator(FAMILY, (0.0, 0.05), g, (1, 3, 64, 64)) for _ in range(60)]
    kinds = {(op.name, getattr(op, "scale", None)) for op in ops}
    assert kinds == {("blur", None), ("sr", 2), ("sr", 4), ("denoise", None)}
    blur_sigmas = [s for op in ops if op.name == "blur" for s in op.sigma]
    assert 0.5 <= min(blur_sigmas) and max(blur_sigmas) <= 3.0
    noise = [op.noise.sigma for op in ops]
    assert 0 <= min(noise) and max(noise) <= 0.05 and len(set(noise)) == 60
    assert all(op.exact_prox for op in ops)


def test_parquet_pairs_become_one_group_per_pair(tmp_path):
    op = SuperResolution(scale=2, noise=Noise(sigma=0.01))
    hq = np.random.default_rng(0).random((16, 16, 3))
    lq = op.forward(torch.from_numpy(hq).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    rows = [{"id": f"p{i}", "hq": encode_png(hq), "lq": encode_png(lq), "params": json.dumps(op.spec()),
             "hq_shape": [3, 16, 16], "lq_shape": [3, 8, 8], "config_hash": "h"} for i in range(3)]
    (tmp_path / "pairs").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs" / "part-0.parquet")
    batches = ParquetBatches(str(tmp_path), batch_size=2, seed=0)
    first, second = batches.next(), batches.next()  # 4 items from 3 pairs: the second pass starts
    assert len(first) == len(second) == 2 and batches.epoch == 1
    x0, y, got = first[0]
    assert x0.shape == (1, 3, 16, 16) and y.shape == (1, 3, 8, 8) and got == op


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="operators\\[0\\].*closed-form prox"):
        _cfg(tmp_path, operators=[{"name": "realesrgan", "scale": 2}])
    with pytest.raises(ConfigError, match="'nfe': at least unfolding.inner_steps = 3"):
        _cfg(tmp_path / "b", nfe=2, unfolding={})
    with pytest.raises(ConfigError, match="'unfolding'"):
        _cfg(tmp_path / "c", unfolding={"inner_step": 2})


@pytest.mark.parametrize("key, value", [("steps", 0), ("batch_size", 0), ("torch_threads", 0), ("lr", 0.0),
                                        ("max_minutes", -1.0), ("checkpoint_every", 0)])
def test_both_training_jobs_check_their_shared_run_keys_alike(key, value):
    """train-prior and train-unfolded share their run keys (pipelines/training/run_config.py):
    the same key, the same refusal, naming it; each keeps its own defaults."""
    from pipelines.train_prior import TrainPriorConfig

    for cls in (TrainPriorConfig, TrainUnfoldedConfig):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            from_dict(cls, {key: value}).validate()
    assert (TrainPriorConfig().batch_size, TrainUnfoldedConfig().batch_size) == (16, 4)
    assert (TrainPriorConfig().checkpoint_dir, TrainUnfoldedConfig().checkpoint_dir) == (
        "runs/train-prior/checkpoints", "runs/train-unfolded/checkpoints")


@pytest.fixture(scope="module")
def trained(ray_local, tmp_path_factory):
    """One 2-step run of the job (its folder, summary): checked by the first test, the file the
    continuation tests start from (a Ray Train fit costs ~10 s; each test's own runs are extra)."""
    tmp_path = tmp_path_factory.mktemp("trained")
    return tmp_path, run(_cfg(tmp_path, steps=2, patch=16))


def test_job_trains_and_writes_a_loadable_unfolding(trained):
    tmp_path, summary = trained
    assert summary.steps == 2 and np.isfinite(summary.final_loss)
    assert set(summary.validation) == {"init_estimate", "untrained", "trained"}
    history = json.loads((tmp_path / "ckpt" / "latest" / "history.json").read_text())
    assert [h["step"] for h in history] == [1, 2]
    card = (tmp_path / "u.md").read_text()
    assert "base.safetensors" in card and "| 2 |" in card  # base prior named; loss table to step 2

    from operators.priors import build_prior

    prior = build_prior({"name": "embedded", "weights": str(tmp_path / "base.safetensors")})
    op = build_degradation({"name": "sr", "scale": 2, "noise_sigma": 0.02})
    y = op.measure(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.Generator())
    out = get_solver("ud2m")(y, op, prior, nfe=4, generator=torch.Generator().manual_seed(1),
                             config=solver_config("ud2m", unfolding=str(tmp_path / "u.safetensors")))
    assert out.x.shape == (1, 3, 32, 32) and out.nfe == 4

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db")
    (logged,) = client.search_runs([mlflow.get_experiment_by_name("restoray").experiment_id])
    loss = sorted(client.get_metric_history(logged.info.run_id, "loss"), key=lambda m: m.step)
    assert [m.value for m in loss] == [h["loss"] for h in history]
    assert logged.data.metrics["val_psnr_trained"] == summary.validation["trained"]


def test_init_unfolding_continues_a_trained_file_on_a_fresh_machine(trained, tmp_path):
    """No checkpoint to resume (a fresh checkout): ``init_unfolding`` starts from the file's
    adapters and step parameters (with learning rates ~0 the result is the file again, where a
    fresh start has zero adapters and untrained steps); ``unfolding`` may only widen its LoRA."""
    from operators.solvers.unfolding_file import read_unfolding

    init = str(trained[0] / "u.safetensors")
    first, _ = read_unfolding(init)
    assert float(first["ud2m.log_delta"].abs().max()) > 1e-4
    with pytest.raises(ConfigError, match="'unfolding' and 'init_unfolding'.*only widen its LoRA"):
        _cfg(tmp_path, init_unfolding=init, unfolding={"inner_steps": 3, "lora_rank": 3})
    with pytest.raises(ConfigError, match="'unfolding.lora_rank': 1 is below the rank 2"):
        _cfg(tmp_path, init_unfolding=init, unfolding={"lora_rank": 1})
    with pytest.raises(ConfigError, match="'init_unfolding'"):
        _cfg(tmp_path, init_unfolding=str(tmp_path / "missing.safetensors"))
    cont = _cfg(tmp_path, steps=1, patch=16, val_images=0, lr=1e-12, lr_scalars=1e-12, unfolding={},
                init_unfolding=init, output=str(tmp_path / "v.safetensors"),
                checkpoint_dir=str(tmp_path / "fresh"))
    run(cont)
    second, _ = read_unfolding(tmp_path / "v.safetensors")
    assert second.keys() == first.keys()
    for k in first:
        torch.testing.assert_close(second[k], first[k], atol=1e-6, rtol=0)


def test_a_wider_lora_continues_a_file_as_it_was(tmp_path):
    """``unfolding: {lora_rank: R}`` beside ``init_unfolding``: the adapters grow to rank R and
    the unfolding starts as the file's, output for output."""
    from operators.priors import build_prior
    from operators.priors.lora import lora_layers
    from operators.solvers.unfolded import UD2M, UnfoldingConfig
    from operators.solvers.unfolding_file import load_unfolding, save_unfolding
    from pipelines.training.unfolded_loop import warm_start

    narrow = UD2M(build_prior(_cfg(tmp_path).prior), UnfoldingConfig(inner_steps=2, lora_rank=2),
                  generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        narrow.log_delta.fill_(0.3)
        for layer in lora_layers(narrow.prior).values():
            layer.up.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    init = str(tmp_path / "narrow.safetensors")
    save_unfolding(narrow, init)
    cfg = _cfg(tmp_path, init_unfolding=init, unfolding={"lora_rank": 5, "lora_alpha": 10.0})
    assert cfg.unfolding_config() == UnfoldingConfig(inner_steps=2, lora_rank=5, lora_alpha=10.0)
    wide = UD2M(build_prior(cfg.prior), cfg.unfolding_config(), generator=torch.Generator().manual_seed(2))
    warm_start(wide, init, None)
    assert {layer.rank for layer in lora_layers(wide.prior).values()} == {5}
    op = build_degradation({"name": "sr", "scale": 2, "noise_sigma": 0.02})
    y = op.measure(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.Generator())
    same = [m(y, op, 2, torch.Generator().manual_seed(3)) for m in (wide, load_unfolding(init, build_prior(cfg.prior)))]
    torch.testing.assert_close(same[0], same[1], atol=1e-5, rtol=1e-5)


def test_an_expert_fine_tunes_on_its_family_alone_and_joins_the_file(trained, tmp_path):
    """``expert: sr`` starts from init_unfolding's shared unfolding, trains on the SR members of
    the family only, and writes init_unfolding's file plus the expert (shared tensors unchanged)."""
    from operators.solvers.unfolding_experts import PREFIX, experts
    from operators.solvers.unfolding_file import read_unfolding

    init = str(trained[0] / "u.safetensors")
    with pytest.raises(ConfigError, match="'expert'.*set 'init_unfolding'"):
        _cfg(tmp_path, expert="sr")
    with pytest.raises(ConfigError, match="'expert' and 'pairs'"):
        _cfg(tmp_path, expert="sr", pairs=str(tmp_path), init_unfolding=init, unfolding={})
    with pytest.raises(ConfigError, match="'expert': no operator .* family 'inpaint_random'.*deblur, denoise, sr"):
        _cfg(tmp_path, expert="inpaint_random", init_unfolding=init, unfolding={})
    summary = run(_cfg(tmp_path, expert="sr", init_unfolding=init, unfolding={}, steps=2, patch=16, val_images=1,
                       output=str(tmp_path / "v.safetensors"), checkpoint_dir=str(tmp_path / "expert-ckpt")))
    assert summary.steps == 2 and set(summary.validation) == {"init_estimate", "untrained", "trained"}
    before, _ = read_unfolding(init)
    after, meta = read_unfolding(tmp_path / "v.safetensors")
    facts = experts(meta)["sr"]
    assert facts["steps"] == 2 and {op["name"] for op in facts["operators"]} == {"sr"}
    assert len(facts["operators"]) == 2  # x2 and x4 of the family
    shared = {k: v for k, v in after.items() if not k.startswith(PREFIX)}
    assert shared.keys() == before.keys() and all(torch.equal(shared[k], before[k]) for k in before)
    tuned = {k[len(PREFIX + "sr."):]: v for k, v in after.items() if k.startswith(PREFIX + "sr.")}
    assert tuned.keys() == before.keys() and not torch.equal(tuned["ud2m.log_delta"], before["ud2m.log_delta"])


def test_a_learned_start_trains_the_operators_its_estimator_serves(tmp_path):
    """``init: {name: imdn}`` (as a solver's): pairs start from IMDN's estimate, on the family's
    x4 bicubic SR only (the operator IMDN learnt); with it, ``expert: refine`` is that family."""
    from operators.estimators import build_estimator
    from operators.priors import build_prior
    from operators.solvers.unfolded import UD2M, UnfoldingConfig
    from operators.solvers.unfolding_file import save_unfolding
    from pipelines.training.unfolded_data import batch_source

    cfg = _cfg(tmp_path, init={"name": "imdn"})
    assert cfg.trained_operators() == [{"name": "sr", "scale": 4}]
    init = str(tmp_path / "u.safetensors")
    save_unfolding(UD2M(build_prior(cfg.prior), UnfoldingConfig(inner_steps=2, lora_rank=2)), init)
    refine = _cfg(tmp_path, init={"name": "imdn"}, expert="refine", init_unfolding=init, unfolding={})
    assert refine.trained_operators() == [{"name": "sr", "scale": 4}]
    with pytest.raises(ConfigError, match="'expert': no operator .* family 'sr'.*their families: refine"):
        _cfg(tmp_path, init={"name": "imdn"}, expert="sr", init_unfolding=init, unfolding={})
    with pytest.raises(ConfigError, match="'init': imdn serves none of 'operators'"):
        _cfg(tmp_path, init={"name": "imdn"}, operators=[{"name": "blur", "kind": "gaussian"}])
    with pytest.raises(ConfigError, match="'init': unknown init estimator 'esrgan'"):
        _cfg(tmp_path, init={"name": "esrgan"})
    with pytest.raises(ConfigError, match="'init' and 'pairs'"):
        _cfg(tmp_path, init={"name": "imdn"}, pairs=str(tmp_path))

    loop = {**refine.__dict__, "operators": refine.trained_operators()}
    (x0, y, op), = batch_source(loop, torch.Generator().manual_seed(0)).next()
    assert op.estimator == build_estimator({"name": "imdn"}) and y.shape[-1] * 4 == x0.shape[-1] == 32
    torch.testing.assert_close(op.init_estimate(y), build_estimator({"name": "imdn"})(y))
    assert float((op.init_estimate(y) - torch.nn.functional.interpolate(y, scale_factor=4)).abs().mean()) > 1e-3
