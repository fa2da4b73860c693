"""The streaming job skeleton (pipelines/job.py) and the JOBS registry: a toy job on a real
local Ray (tables, error rows, resume), run-only keys out of every job's hash, and a CLI
import that loads no heavy library."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.cli import load_job_config
from pipelines.config import from_dict, to_dict
from pipelines.job import JobConfig, Plan, StreamingJob, run_job
from pipelines.jobs import JOBS

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, kw_only=True)
class SquaresConfig(JobConfig):
    job: str = "squares"
    values: list[int]
    output: str = "./runs/squares"
    flush_rows: int = 2


class SquaresJob(StreamingJob):
    """The whole of a job: its plan, its stages, its row schema."""

    def plan(self, chash: str) -> Plan:
        from pipelines.tables import finished_ids

        done = finished_ids(self.cfg.output, chash, self.cfg.storage, retry_errors=self.cfg.retry_errors)
        rows = [{"id": f"v{i}", "source_uri": f"mem://{v}", "relative_path": str(v), "value": v}
                for i, v in enumerate(self.cfg.values)]
        todo = [r for r in rows if r["id"] not in done]
        return Plan(todo, skipped=len(rows) - len(todo))

    def stages(self, ds, chash: str, plan: Plan):
        def square(batch: dict) -> dict:  # nested: pickled by value, Ray workers cannot import tests
            """A stateless stage: value -> value ** 2; a negative value is an error row."""
            from actors.columns import batch_to_rows, no_error, rows_to_batch

            out = []
            for r in batch_to_rows(batch):
                err = no_error() if int(r["value"]) >= 0 else {
                    "error_stage": "square", "error_type": "ValueError", "error_message": f"negative: {r['value']}",
                    "error_kind": "permanent"}
                out.append({**r, "square": int(r["value"]) ** 2, **err})
            return rows_to_batch(out)

        return ds.map_batches(square, batch_size=2)

    def result_row(self, row: dict, chash: str) -> dict:
        return {"id": str(row["id"]), "value": int(row["value"]), "square": int(row["square"]),
                "config_hash": chash}


def _table(path: Path, name: str) -> list[dict]:
    return sorted((r for f in (path / name).glob("*.parquet") for r in pq.read_table(f).to_pylist()),
                  key=lambda r: r["id"])


def test_a_toy_job_streams_tables_records_errors_and_resumes(ray_local, tmp_path):
    cfg = from_dict(SquaresConfig, {"values": [3, -1, 4, 5, 0], "output": str(tmp_path),
                                    "mlflow": {"enabled": False}})
    s = run_job(SquaresJob(cfg))
    assert (s.planned, s.done, s.errors, s.skipped, s.total_results, s.total_errors) == (5, 4, 1, 0, 4, 1)
    assert [(r["id"], r["square"]) for r in _table(tmp_path, "results")] == [
        ("v0", 9), ("v2", 16), ("v3", 25), ("v4", 0)]
    assert [(r["id"], r["stage"], r["message"]) for r in _table(tmp_path, "errors")] == [
        ("v1", "square", "negative: -1")]
    assert all(pq.read_table(f).num_rows <= 2 for f in (tmp_path / "results").glob("*.parquet"))  # flush_rows
    again = run_job(SquaresJob(dataclasses.replace(cfg, ray=dataclasses.replace(cfg.ray, actors=7))))
    assert (again.planned, again.done, again.skipped, again.total_results) == (0, 0, 5, 4)


def test_nothing_to_do_builds_no_stages_and_still_finishes(tmp_path):
    finished = []

    class Done(SquaresJob):
        def stages(self, ds, chash, plan):
            raise AssertionError("stages built for an empty plan")

        def finish(self, summary):
            finished.append(summary.planned)

    cfg = from_dict(SquaresConfig, {"values": [], "output": str(tmp_path)})
    assert run_job(Done(cfg)).planned == 0 and finished == [0]


@pytest.mark.parametrize("path, job_class, max_pixels_in_hash", [
    ("configs/quickstart.yaml", "pipelines.restore_images.RestoreImagesJob", True),
    ("configs/quickstart-video.yaml", "pipelines.restore_video.RestoreVideoJob", True),
    ("configs/synth-pairs.yaml", "pipelines.synth_pairs.SynthPairsJob", False),
    ("configs/evaluate-smoke.yaml", "pipelines.evaluate.EvaluateJob", False),
])
def test_run_only_keys_leave_every_jobs_hash_alone(path, job_class, max_pixels_in_hash):
    """max_pixels turns an input into an error row: in the hash of the jobs where that is the
    row's fate (raising it retries those errors), out where a row's bytes never depend on it."""
    from pipelines.sections import LeaseConfig

    module, name = job_class.rsplit(".", 1)
    job = getattr(__import__(module, fromlist=[name]), name)
    cfg, _ = load_job_config(str(REPO / path), [])
    base = job(cfg).config_hash()
    for key, value in (("output", "/elsewhere"), ("comparisons", 9), ("max_error_fraction", 0.1),
                       ("retry_errors", True), ("lease", LeaseConfig(wait_s=5)),
                       ("ray", dataclasses.replace(cfg.ray, actors=9)),
                       ("storage", dataclasses.replace(cfg.storage, retries=0)),
                       ("mlflow", dataclasses.replace(cfg.mlflow, enabled=False))):
        assert job(dataclasses.replace(cfg, **{key: value})).config_hash() == base, key
    assert (job(dataclasses.replace(cfg, max_pixels=10)).config_hash() != base) == max_pixels_in_hash
    assert job(dataclasses.replace(cfg, seed=cfg.seed + 1)).config_hash() != base


def test_every_job_config_round_trips_and_streaming_jobs_share_the_base():
    paths = [p for p in sorted((REPO / "configs").glob("*.yaml")) if yaml.safe_load(p.read_text()).get("job") in JOBS]
    assert len(paths) >= 4
    for path in paths:
        cfg, run = load_job_config(str(path), [])
        kind = JOBS[cfg.job]
        assert type(cfg) is kind.config and run is kind.run
        assert from_dict(kind.config, to_dict(cfg)) == cfg, path
        d = list(to_dict(cfg))
        assert d[0] == "job" and d[-1] == "mlflow", (path, d)  # own keys first, sections last
    assert all(issubclass(JOBS[k].config, JobConfig) for k in ("restore-images", "synth-pairs", "evaluate"))


def test_cli_import_loads_no_heavy_library():
    code = ("import sys, pipelines.cli; "
            "print(sorted(m for m in ('numpy', 'torch', 'ray', 'pyarrow', 'PIL', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
