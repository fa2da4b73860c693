"""The blind methods' networks train in the train-prior loop on (HQ, LQ) pairs: Real-ESRGAN
pairs made on the fly (deterministic, one scale per batch) or aligned crops of synth-pairs
Parquet; each kind's weights load back; train-inn is the same job with the INN as default."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipelines.config import ConfigError, from_dict
from pipelines.train_prior import TrainINNConfig, TrainPriorConfig
from pipelines.training.pair_batches import DegradedPatches
from pipelines.training.paired_objective import PAIRED, method_module
from tests.conftest import mlflow_store
from tests.pipelines.test_train_prior import _images
from tests.pipelines.training.local_fit import fit_local

TINY = {"inn": {"width": 8, "embed_dim": 8}, "latent_inn": {"width": 8, "embed_dim": 8},
        "conditional": {"unet": {"channels": [8, 16], "blocks": [1, 1], "emb_dim": 16, "fourier_features": 8}},
        "irsde": {"channels": [8, 16], "blocks": [1, 1], "emb_dim": 16, "fourier_features": 8}}
SCALES = {"inn": [4], "latent_inn": [4, 1], "conditional": [4], "irsde": [4, 1]}


def _cfg(tmp_path, data, kind, cls=TrainPriorConfig, **kw):
    base = {"model": kind, "data": data, "patch": 32, "batch_size": 2, "steps": 6, "log_every": 2,
            "checkpoint_every": 2, "warmup_steps": 1, "lr": 2e-3, "net": TINY[kind], "scales": SCALES[kind],
            "output": str(tmp_path / f"{kind}.safetensors"), "checkpoint_dir": str(tmp_path / "ckpt"),
            "mlflow": {"tracking_uri": mlflow_store(tmp_path, "m.db")}}
    base.update(kw)
    cfg = from_dict(cls, base)
    cfg.validate()
    return cfg


def test_degraded_patches_are_deterministic_pairs(tmp_path):
    from operators.degradations import sample_degradation

    data = _images(tmp_path / "data")
    make = lambda: DegradedPatches(data, {"name": "realesrgan"}, [4, 1], 32, 3, torch.Generator().manual_seed(5))
    a, b = make(), make()
    shapes = set()
    for _ in range(6):
        (hq1, lq1), (hq2, lq2) = a.sample(), b.sample()
        assert torch.equal(hq1, hq2) and torch.equal(lq1, lq2)
        assert hq1.shape == (3, 3, 32, 32) and 0 <= lq1.min() and lq1.max() <= 1
        shapes.add(lq1.shape[-1])
    assert shapes == {8, 32}  # both scales drawn, one per batch
    # each LQ is its HQ under a chain drawn from the same generator stream (replayed here)
    g = torch.Generator().manual_seed(5)
    c = DegradedPatches(data, {"name": "realesrgan"}, [4], 32, 1, g)
    hq, lq = c.sample()
    assert lq.shape == (1, 3, 8, 8) and float((lq - torch.nn.functional.avg_pool2d(hq, 4)).abs().mean()) < 0.25
    assert sample_degradation  # the chain sampler the batches use


@pytest.mark.parametrize("kind", sorted(PAIRED))
def test_each_paired_kind_trains_and_loads(tmp_path, kind):
    from pipelines.training.loop import train_loop

    data = _images(tmp_path / "data")
    cfg = _cfg(tmp_path, data, kind)
    fit_local(train_loop, cfg)
    history = json.loads((tmp_path / "ckpt" / "latest" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4, 6] and all(np.isfinite(h["loss"]) for h in history)
    model = method_module(kind).load(cfg.output)
    from safetensors import safe_open

    with safe_open(cfg.output, framework="pt") as f:
        meta = f.metadata()
    assert meta["training_kind"] == kind and json.loads(meta["scales"]) == SCALES[kind]
    assert sum(p.numel() for p in model.parameters()) > 0


def test_latent_inn_learns_the_latent_space_of_its_prior(tmp_path):
    """With ``latent_prior`` the INN works on that prior's scaled latents (channels from its codec),
    and the spec is kept in the weights' metadata."""
    from pipelines.training.loop import train_loop

    data = _images(tmp_path / "data")
    cfg = _cfg(tmp_path, data, "latent_inn", scales=[4], steps=2, patch=32, latent_prior={"name": "embedded_latent"})
    fit_local(train_loop, cfg)
    model = method_module("latent_inn").load(cfg.output)
    from operators.priors import build_prior
    from safetensors import safe_open

    assert model.config.channels == build_prior({"name": "embedded_latent"}).channels
    with safe_open(cfg.output, framework="pt") as f:
        assert json.loads(f.metadata()["latent_prior"]) == {"name": "embedded_latent"}


def test_a_paired_loss_decreases(tmp_path):
    """30 steps of the PixelINN on a fixed stream of pairs: the mean loss of the last ten steps
    is below that of the first ten."""
    from pipelines.training.loop import train_loop

    data = _images(tmp_path / "data")
    fit_local(train_loop, _cfg(tmp_path, data, "inn", steps=30, log_every=10, checkpoint_every=30))
    losses = [h["loss"] for h in json.loads((tmp_path / "ckpt" / "latest" / "history.json").read_text())]
    assert losses[-1] < losses[0]


def test_train_inn_defaults_and_config_errors(tmp_path):
    data = _images(tmp_path / "data")
    cfg = _cfg(tmp_path, data, "inn", cls=TrainINNConfig)
    assert cfg.job == "train-inn" and TrainINNConfig().model == "inn"
    with pytest.raises(ConfigError, match="scales"):
        _cfg(tmp_path, data, "inn", scales=[1])  # the Haar PixelINN is x4 only
    with pytest.raises(ConfigError, match="scales"):
        _cfg(tmp_path, data, "conditional", scales=[3])
    with pytest.raises(ConfigError, match=r"scales.*\[4, 1\]"):  # a conditional model is trained for one scale
        _cfg(tmp_path, data, "conditional", scales=[4, 1])
    with pytest.raises(ConfigError, match="patch"):
        _cfg(tmp_path, data, "conditional", patch=36)
    with pytest.raises(ConfigError, match="degradation"):
        _cfg(tmp_path, data, "irsde", degradation={"name": "nope"})


def test_parquet_pairs_are_cut_into_aligned_patches(tmp_path):
    """synth-pairs rows (PNG bytes) -> (hq, lq) patches whose LQ crop is the HQ crop's image
    under the pair's x4 map (here a block mean, so the check is exact up to PNG rounding)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from pipelines.training.pair_batches import ParquetPatches

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        hq = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        lq = hq.reshape(12, 4, 16, 4, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        rows.append({"id": f"p{i}", "hq": png(hq), "lq": png(lq), "params": json.dumps({"name": "sr", "scale": 4}),
                     "hq_shape": [3, 48, 64], "lq_shape": [3, 12, 16], "config_hash": "h"})
    (tmp_path / "out" / "pairs").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "out" / "pairs" / "part-0.parquet")
    src = ParquetPatches(str(tmp_path / "out"), [4], 32, 4, torch.Generator().manual_seed(1))
    for _ in range(2):
        hq, lq = src.sample()
        assert hq.shape == (4, 3, 32, 32) and lq.shape == (4, 3, 8, 8)
        assert float((torch.nn.functional.avg_pool2d(hq, 4) - lq).abs().max()) <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="training scales"):
        ParquetPatches(str(tmp_path / "out"), [2], 32, 1, torch.Generator()).sample()
