"""The driver loops and the workers' write stage, on a fake dataset (no Ray): routing,
shards, counts, what reaches the driver, the lease check before a shard."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from actors.columns import batch_to_rows, no_error, rows_to_batch
from pipelines.config import from_dict
from pipelines.sections import StorageConfig
from pipelines.streaming import stream_to_tables
from pipelines.summary import JobSummary


class FakeDataset:
    """Batches of rows; ``map_batches`` applies the stage to each (one batch: one call)."""

    def __init__(self, *batches: list[dict]):
        self.batches = batches
        self.map_kwargs: list[dict] = []

    def map_batches(self, fn, **kwargs) -> FakeDataset:
        out = FakeDataset(*[batch_to_rows(fn(rows_to_batch(b))) for b in self.batches])
        out.map_kwargs = [*self.map_kwargs, kwargs]
        return out

    def iter_batches(self, batch_size=None, batch_format="numpy"):
        assert batch_format == "numpy"
        return iter(rows_to_batch(b) for b in self.batches)


def _row(i: int, error: str = "") -> dict:
    err = {"error_stage": error, "error_type": "E" if error else "", "error_message": "boom" if error else "",
           "error_kind": "permanent" if error else ""}
    return {"id": f"r{i}", "source_uri": f"/in/{i}.png", "relative_path": f"{i}.png", "dataset": "d", "value": i,
            **(err if error else no_error())}


def _ids(path):
    return sorted(r for f in path.glob("*.parquet") for r in pq.read_table(f).column("id").to_pylist())


def test_rows_are_routed_sharded_and_counted(tmp_path):
    ds = FakeDataset([_row(0), _row(1, "decode"), _row(2)], [_row(3), _row(4), _row(5, "restore")])
    summary, seen = JobSummary(job="j", output=str(tmp_path), config_hash="h"), []
    stream_to_tables(ds, str(tmp_path), StorageConfig(), 2, summary, "h",
                     lambda r: {"id": str(r["id"]), "value": int(r["value"])}, error_extra=("dataset",),
                     on_result=lambda r: seen.append(str(r["id"])))
    assert (summary.done, summary.errors) == (4, 2) and seen == ["r0", "r2", "r3", "r4"]
    assert _ids(tmp_path / "results") == ["r0", "r2", "r3", "r4"] and _ids(tmp_path / "errors") == ["r1", "r5"]
    assert all(pq.read_table(f).num_rows <= 2 for f in (tmp_path / "results").glob("*.parquet"))
    err = pq.read_table(next((tmp_path / "errors").glob("*.parquet"))).to_pylist()[0]
    assert set(err) == {"id", "source_uri", "relative_path", "dataset", "stage", "error_type", "message",
                        "kind", "recorded_at", "config_hash"} and (err["message"], err["kind"]) == ("boom", "permanent")


def test_synth_pairs_survives_a_bad_comparison_png_and_ignores_max_pixels(tmp_path):
    from pipelines.job import stream_job
    from pipelines.synth_pairs import PairsSummary, SynthPairsConfig, SynthPairsJob

    cfg = from_dict(SynthPairsConfig, {"input": "x", "output": str(tmp_path), "comparisons": 4, "shard_rows": 8})
    row = {**_row(0), "crop_index": 0, "top": 0, "left": 0, "height": 8, "width": 8, "hq": b"not a png",
           "lq": b"nor this", "params": json.dumps({"name": "blur"}), "hq_shape": "[3, 8, 8]", "lq_shape": "[3, 8, 8]"}
    summary, job = PairsSummary(job="synth-pairs", output=str(tmp_path), config_hash="h"), SynthPairsJob(cfg)
    job.compare_ids = ("r0",)
    stream_job(job, FakeDataset([row]), "h", summary)
    assert summary.done == 1 and job.grids == {} and _ids(tmp_path / "pairs") == ["r0"]
    other = from_dict(SynthPairsConfig, {"input": "x", "output": str(tmp_path), "max_pixels": 10})
    assert job.config_hash() == SynthPairsJob(other).config_hash()


def _stage(tmp_path, chash: str = "h", **kw):
    from pipelines.stages.write_rows import WriteRowsStage

    return WriteRowsStage(str(tmp_path), "results", lambda r: {"id": str(r["id"]), "value": int(r["value"]),
                                                               "png": bytes(r["png"])},
                          chash, StorageConfig(), error_extra=("dataset",), **kw)


def test_the_write_stage_writes_one_shard_per_table_and_passes_on_small_rows(tmp_path):
    rows = [{**_row(i, "decode" if i == 1 else ""), "png": bytes(1000 + i)} for i in range(4)]
    out = batch_to_rows(_stage(tmp_path, keep=("png",), keep_ids=frozenset({"r2"}))(rows_to_batch(rows)))
    assert [(str(r["id"]), str(r["status"]), str(r["error_kind"])) for r in out] == [
        ("r0", "done", ""), ("r1", "error", "permanent"), ("r2", "done", ""), ("r3", "done", "")]
    assert [len(r["png"]) for r in out] == [0, 0, 1002, 0]  # bytes only for keep_ids
    assert set(out[0]) == {"id", "status", "error_kind", "png"}
    assert len(list((tmp_path / "results").glob("*.parquet"))) == 1 and _ids(tmp_path / "results") == ["r0", "r2", "r3"]
    assert _ids(tmp_path / "errors") == ["r1"]
    err = pq.read_table(next((tmp_path / "errors").glob("*.parquet"))).to_pylist()[0]
    assert (err["dataset"], err["stage"], err["kind"], err["config_hash"]) == ("d", "decode", "permanent", "h")
    # a retried task (same batch) replaces its shards; another config hash writes its own
    _stage(tmp_path)(rows_to_batch(rows))
    assert [len(list((tmp_path / t).glob("*.parquet"))) for t in ("results", "errors")] == [1, 1]
    assert _ids(tmp_path / "results") == ["r0", "r2", "r3"] and _ids(tmp_path / "errors") == ["r1"]
    _stage(tmp_path, "h2")(rows_to_batch(rows))
    assert _ids(tmp_path / "results") == ["r0", "r0", "r2", "r2", "r3", "r3"]


def test_a_worker_that_finds_another_runs_lease_writes_nothing_and_the_driver_stops(tmp_path):
    import pytest

    from pipelines.lease import LeaseLost
    from pipelines.streaming import stream_counts

    lease = tmp_path / "_lease.json"
    lease.write_text(json.dumps({"run_id": "mine"}))
    ours = _stage(tmp_path, lease_uri=str(lease), run_id="mine")
    rows = [{**_row(i), "png": b""} for i in range(2)]
    summary = JobSummary(job="j", output=str(tmp_path), config_hash="h")
    stream_counts(FakeDataset(rows).map_batches(ours), summary)
    assert summary.done == 2 and _ids(tmp_path / "results") == ["r0", "r1"]
    lease.write_text(json.dumps({"run_id": "another"}))  # taken over
    later = FakeDataset([{**_row(i), "png": b""} for i in range(2, 4)]).map_batches(ours)
    with pytest.raises(LeaseLost, match="workers stopped writing"):
        stream_counts(later, summary)
    assert _ids(tmp_path / "results") == ["r0", "r1"] and summary.done == 2
