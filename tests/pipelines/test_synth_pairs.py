"""synth-pairs on a real local Ray: counts, determinism, resume, shards, the reader, the CLI."""
from __future__ import annotations

import json
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from operators.degradations import build_degradation
from operators.media import encode_png
from operators.seeding import make_generator
from pipelines.cli import main as cli_main
from pipelines.config import ConfigError, from_dict
from pipelines.pairs_reader import PairsDataset, collate_pairs, list_shards
from pipelines.job import run_job
from pipelines.synth_pairs import SynthPairsConfig, SynthPairsJob, run
from pipelines.tables import read_table
from tests.conftest import mlflow_store

REPO = Path(__file__).resolve().parents[2]
SIZES = {"a.png": (64, 64), "b.png": (80, 96), "sub/c.png": (96, 72), "small.png": (20, 24)}
CROPS = 2
SPECS = [{"name": "realesrgan", "scale": 4}, {"name": "sr", "scale": 2, "noise_sigma": 0.02}]


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory) -> Path:
    """Three valid PNGs, one smaller than the crop (error rows), one corrupt file (error rows)."""
    d = tmp_path_factory.mktemp("synth_in")
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([np.sin(6 * xx + c) * 0.4 + 0.5 for c in range(3)], axis=2)
        img = np.clip(img + 0.05 * rng.standard_normal((h, w, 3)), 0, 1)
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(encode_png(img))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png at all")
    return d


def make_cfg(input_dir: Path, output: Path, **kw) -> SynthPairsConfig:
    data = {"input": str(input_dir), "output": str(output), "crop_size": 32, "crops_per_image": CROPS,
            "degradation": SPECS, "seed": 3, "shard_rows": 4, "ray": {"batch_size": 2},
            "mlflow": {"enabled": False}, **kw}
    cfg = from_dict(SynthPairsConfig, data)
    cfg.validate()
    return cfg


def pairs_by_id(output: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_table(str(output), "pairs").to_pylist()}


@pytest.fixture(scope="module")
def first_run(ray_local, input_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_out1")
    return out, run(make_cfg(input_dir, out))


def test_rows_are_crops_and_errors_counted(first_run):
    out, summary = first_run
    n_files = len(SIZES) + 1
    assert summary.planned == n_files * CROPS
    assert (summary.done, summary.errors) == (3 * CROPS, 2 * CROPS)  # small.png and broken.png
    assert summary.total_results + summary.total_errors == n_files * CROPS
    errors = read_table(str(out), "errors").to_pylist()
    stages = sorted((Path(e["source_uri"]).name, e["stage"]) for e in errors)
    assert stages == [("broken.png", "decode")] * CROPS + [("small.png", "crop")] * CROPS
    assert all("smaller than crop_size 32" in e["message"] for e in errors if e["stage"] == "crop")
    shard_rows = sorted(len(read_table_file(p)) for p in list_shards(str(out)))
    assert shard_rows == [2, 4]  # full shards of shard_rows as they fill, the rest at the end
    assert summary.pairs_per_s > 0 and "pairs/s" in summary.table()


def read_table_file(path: str) -> list:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["id"]).column("id").to_pylist()


def test_pair_rows_hold_boxes_shapes_and_params(first_run):
    out, _ = first_run
    rows = pairs_by_id(out)
    names, picks = set(), set()
    for r in rows.values():
        h, w = SIZES[r["relative_path"]]
        assert 0 <= r["top"] <= h - 32 and 0 <= r["left"] <= w - 32 and r["height"] == r["width"] == 32
        spec = json.loads(r["params"])
        names.add(spec["name"])
        scale = spec["scale"]
        assert r["hq_shape"] == [3, 32, 32] and r["lq_shape"] == [3, 32 // scale, 32 // scale]
        assert r["seed"] == 3 and len(r["config_hash"]) == 16
        # a list of specs: one picked per crop, by the crop id's own seeded draw
        k = int(torch.randint(len(SPECS), (), generator=make_generator(3, r["id"], "choice")))
        assert spec["name"] == SPECS[k]["name"]
        picks.add(k)
    assert names == {SPECS[k]["name"] for k in picks} and len(rows) == 3 * CROPS


def test_deterministic_across_runs_and_resume(first_run, input_dir, tmp_path):
    out1, _ = first_run
    ref = pairs_by_id(out1)
    out2 = tmp_path / "out2"
    s2 = run(make_cfg(input_dir, out2))
    assert s2.config_hash == first_run[1].config_hash
    other = pairs_by_id(out2)
    assert set(other) == set(ref)
    for rid, r in ref.items():
        assert (other[rid]["hq"], other[rid]["lq"], other[rid]["params"]) == (r["hq"], r["lq"], r["params"])
    # a re-run into the same output writes nothing new
    before = sorted(p.name for p in (out2 / "pairs").iterdir())
    again = run(make_cfg(input_dir, out2))
    assert (again.done, again.errors, again.skipped) == (0, 0, (len(SIZES) + 1) * CROPS)
    assert sorted(p.name for p in (out2 / "pairs").iterdir()) == before
    # a lost shard (crash before it landed) is redone, with the same bytes
    lost = sorted((out2 / "pairs").iterdir())[0]
    n_lost = len(read_table_file(str(lost)))
    lost.unlink()
    redo = run(make_cfg(input_dir, out2))
    assert (redo.done, redo.errors) == (n_lost, 0)
    assert {k: v["lq"] for k, v in pairs_by_id(out2).items()} == {k: v["lq"] for k, v in ref.items()}
    # another seed is another config: different bytes, nothing skipped
    seeded = run(make_cfg(input_dir, tmp_path / "out3", seed=4))
    assert seeded.config_hash != s2.config_hash
    assert pairs_by_id(tmp_path / "out3").keys() == ref.keys()
    assert any(pairs_by_id(tmp_path / "out3")[k]["hq"] != ref[k]["hq"] for k in ref)


def _comparable(table) -> list[dict]:
    """Rows by id, ``recorded_at`` blanked, object addresses in messages made neutral."""
    rows = [{**r, "recorded_at": None, "message": re.sub("0x[0-9a-f]+", "0x", str(r.get("message")))}
            for r in table.to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


class DriverWritten(SynthPairsJob):
    """The tables as they were written before issue 10: full rows to the driver, which writes."""

    def row_function(self, chash):
        return None


class Watched(SynthPairsJob):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.seen: list[dict] = []

    def on_result(self, row):
        self.seen.append(row)
        super().on_result(row)


def test_workers_write_the_tables_the_driver_wrote_and_send_back_ids_only(ray_local, input_dir, tmp_path):
    watched = Watched(make_cfg(input_dir, tmp_path / "workers", comparisons=3))
    run_job(watched)
    run_job(DriverWritten(make_cfg(input_dir, tmp_path / "driver")))
    assert {k for r in watched.seen for k in r} == {"id", "status", "error_kind", "hq", "lq"}
    with_bytes = sorted(str(r["id"]) for r in watched.seen if len(r["hq"]) or len(r["lq"]))
    assert with_bytes == sorted(set(watched.compare_ids) & {str(r["id"]) for r in watched.seen})
    assert len(watched.compare_ids) == 3 and sorted(watched.grids) == [f"comparisons/{i}.png" for i in with_bytes]
    for name in ("pairs", "errors"):
        w, d = (read_table(str(tmp_path / out), name) for out in ("workers", "driver"))
        assert w.schema == d.schema, name  # column order and types too
        assert _comparable(w) == _comparable(d), name
        assert all(len(read_table_file(str(f))) <= 4 for f in (tmp_path / "workers" / name).iterdir())


def test_reader_yields_tensors_that_params_rebuild(first_run):
    out, summary = first_run
    ds = PairsDataset(str(out), config_hash=summary.config_hash)
    items = list(ds)
    assert len(items) == 3 * CROPS and len({it["id"] for it in items}) == len(items)
    for it in items:
        hq, lq = it["hq"], it["lq"]
        assert hq.dtype == torch.float32 and hq.shape == (3, 32, 32)
        op = build_degradation(it["params"])
        assert lq.shape == op.output_shape(tuple(hq.shape))
        if it["params"]["name"] == "realesrgan":  # the recorded chain replays bit for bit
            assert torch.equal(op.forward(hq[None])[0], lq)
        else:  # noise from make_generator(seed, id, "noise"), then clipped and quantized
            y = op.measure(hq[None], make_generator(3, it["id"], "noise"))[0]
            assert torch.allclose(torch.round(y.clamp(0, 1) * 255) / 255, lq, atol=1e-6)


def test_reader_splits_shards_across_workers_and_shuffles(first_run, monkeypatch):
    import pipelines.pairs_reader as pr

    out, _ = first_run
    ds = PairsDataset(str(out), shuffle_shards=True, seed=1)
    whole = sorted(it["id"] for it in ds)
    parts = []
    for wid in range(2):
        monkeypatch.setattr(pr, "get_worker_info", lambda w=wid: types.SimpleNamespace(id=w, num_workers=2))
        parts.append([it["id"] for it in ds])
    assert all(parts) and not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == whole
    items = list(PairsDataset(str(out)))
    name = max({it["params"]["name"] for it in items}, key=lambda n: sum(it["params"]["name"] == n for it in items))
    group = [it for it in items if it["params"]["name"] == name]  # one degradation: stackable
    batch = collate_pairs(group)
    lq_shape = build_degradation(group[0]["params"]).output_shape((3, 32, 32))
    assert batch["hq"].shape == (len(group), 3, 32, 32) and tuple(batch["lq"].shape[1:]) == tuple(lq_shape)


def test_mlflow_run_gets_config_counts_and_rate(first_run, tmp_path):
    import mlflow

    from pipelines.config import to_dict
    from pipelines.sections import MlflowConfig

    out, summary = first_run
    uri = mlflow_store(tmp_path)
    cfg = make_cfg(Path("."), out)
    summary.log_pairs_run(MlflowConfig(tracking_uri=uri, experiment="pairs"), to_dict(cfg), cfg.storage,
                          {"comparisons/x.png": b"png"})
    client = mlflow.MlflowClient(uri)
    run = client.get_run(summary.run_id)
    assert run.data.params["crop_size"] == "32"
    assert run.data.metrics["pairs"] == 3 * CROPS and run.data.metrics["errors"] == 2 * CROPS
    assert run.data.metrics["pairs_per_s"] > 0
    arts = {a.path for a in client.list_artifacts(summary.run_id)}
    assert {"comparisons", "errors"} <= arts


def test_config_checks():
    with pytest.raises(ConfigError, match="degradation\\[0\\]' with crop_size 32: sr x3"):
        make_cfg(Path("in"), Path("out"), degradation=[{"name": "sr", "scale": 3}])
    with pytest.raises(ConfigError, match="unknown degradation 'nope'; valid choices: blind, blur"):
        make_cfg(Path("in"), Path("out"), degradation={"name": "nope"})
    with pytest.raises(ConfigError, match="'crops_per_image': must be >= 1"):
        make_cfg(Path("in"), Path("out"), crops_per_image=0)


def test_cli_dry_run_of_the_config_file(capsys):
    assert cli_main(["run", str(REPO / "configs" / "synth-pairs.yaml"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "job: synth-pairs" in printed and "crop_size: 256" in printed and "name: realesrgan" in printed
    assert "BSDS400_color" in printed and "./runs/synth-pairs" in printed
    assert cli_main(["run", str(REPO / "configs" / "synth-pairs.yaml"), "--dry-run", "--set", "bogus=1"]) == 2
