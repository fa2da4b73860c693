"""train-prior on Ray Train (one CPU worker): weights that load as priors, resume, MLflow curve; the
codec and latent kinds through the same loop in Ray Train's local mode (exact resume of both
training loops: tests/pipelines/training/test_resume.py)."""
from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from operators.priors import build_prior
from pipelines.config import from_dict
from pipelines.train_prior import TrainPriorConfig, run
from tests.conftest import mlflow_store
from tests.pipelines.training.local_fit import fit_local

TINY_UNET = {"channels": [8, 16], "blocks": [1, 1], "emb_dim": 16, "fourier_features": 8}


def _images(root, n=3):
    rng = np.random.default_rng(0)
    root.mkdir()
    for i in range(n):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(root / f"{i}.png")
    return str(root)


def _cfg(tmp_path, data, **kw):
    base = {"data": data, "patch": 16, "batch_size": 2, "steps": 4, "log_every": 2, "checkpoint_every": 2,
            "warmup_steps": 1, "net": TINY_UNET, "output": str(tmp_path / "pixel.safetensors"),
            "checkpoint_dir": str(tmp_path / "ckpt"), "mlflow": {"tracking_uri": mlflow_store(tmp_path, "m.db")}}
    base.update(kw)
    cfg = from_dict(TrainPriorConfig, base)
    cfg.validate()
    return cfg


def test_pixel_prior_trains_resumes_and_loads(ray_local, tmp_path):
    data = _images(tmp_path / "data")
    first = run(_cfg(tmp_path, data))
    assert first.steps == 4 and np.isfinite(first.final_loss)
    history = json.loads((tmp_path / "ckpt" / "latest" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    resumed = run(_cfg(tmp_path, data, steps=6))  # continues from step 4, not from 0
    history = json.loads((tmp_path / "ckpt" / "latest" / "history.json").read_text())
    assert resumed.steps == 6 and [h["step"] for h in history] == [2, 4, 6]
    prior = build_prior({"name": "embedded", "weights": str(tmp_path / "pixel.safetensors")})
    x = torch.rand(1, 3, 20, 28)
    assert prior.denoise(x, 0.1).shape == x.shape

    import mlflow

    runs = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db").search_runs(
        [mlflow.get_experiment_by_name("restoray").experiment_id])
    loss = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db").get_metric_history(runs[0].info.run_id, "loss")
    assert len(runs) == 2 and len(loss) == 3


def test_codec_then_latent_prior(tmp_path):
    from pipelines.training.loop import train_loop

    data = _images(tmp_path / "data")
    codec, latent = tmp_path / "codec.safetensors", tmp_path / "latent.safetensors"
    codec_net = {"latent_channels": 4, "width": 8, "blocks": 1}  # the block codec (default arch)
    fit_local(train_loop, _cfg(tmp_path, data, model="codec", net=codec_net, output=str(codec),
                               checkpoint_dir=str(tmp_path / "c1")))
    fit_local(train_loop, _cfg(tmp_path, data, model="latent", codec=str(codec), output=str(latent),
                               checkpoint_dir=str(tmp_path / "c2")))
    prior = build_prior({"name": "embedded_latent", "weights": str(latent)})
    x = torch.rand(1, 3, 32, 32)
    z = prior.encode(x)
    assert z.shape == (1, 4, 8, 8) and prior.space == "latent"
    assert prior.decode(prior.denoise(z, 0.5)).shape == x.shape
    # continuing from the weights keeps the latent scaling the network was trained with
    again = tmp_path / "latent2.safetensors"
    fit_local(train_loop, _cfg(tmp_path, _images(tmp_path / "other", n=2), model="latent", codec=str(codec),
                               init_weights=str(latent), output=str(again), checkpoint_dir=str(tmp_path / "c3")))
    assert build_prior({"name": "embedded_latent", "weights": str(again)}).config == prior.config
