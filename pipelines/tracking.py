"""MLflow glue: one run per job, from the driver, with the resolved config as params."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from pipelines.config import flatten
from pipelines.redact import redact_config
from pipelines.sections import MlflowConfig

DEFAULT_DB = "runs/mlflow.db"


def resolve_tracking_uri(cfg: MlflowConfig) -> str:
    """Config, then $MLFLOW_TRACKING_URI, then a SQLite file under ./runs."""
    if cfg.tracking_uri:
        return cfg.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    path = Path(DEFAULT_DB).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock (fcntl) on ``<db>.lock`` beside a SQLite store while a run
    logs. MLflow creates and migrates the schema, and the experiment, on first use; two
    processes doing that at once fail (``duplicate column name: step``, ``table experiments
    already exists``, a UNIQUE constraint on the experiment name). Other stores: no lock."""
    if not tracking_uri.startswith("sqlite:///") or tracking_uri.endswith(":memory:"):
        yield
        return
    import fcntl

    db = Path(tracking_uri[len("sqlite:///"):].split("?", 1)[0])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _experiment_id(mlflow, name: str, tracking_uri: str) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):  # keep artifacts beside the DB, not in ./mlruns
        db = Path(tracking_uri[len("sqlite:///"):])
        artifact_location = (db.parent / "mlartifacts" / name).absolute().as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def log_run(cfg: MlflowConfig, run_name: str, params: dict, metrics: dict[str, float],
            artifacts: dict[str, bytes], tags: dict[str, str] | None = None,
            metric_series: dict[str, list[float]] | None = None,
            upload_config: bool = False) -> tuple[str, str] | None:
    """Log one run; return (run_id, tracking_uri), or None when tracking is disabled.

    artifacts: {relative artifact path: bytes}. metric_series: {name: values by step}.
    Params (and, with ``upload_config``, ``config.yaml`` made from them) are redacted:
    URIs lose credentials and query strings (pipelines/redact.py).
    """
    if not cfg.enabled:
        return None
    import mlflow

    params = redact_config(params)
    if upload_config:
        artifacts = {**artifacts, "config.yaml": yaml.safe_dump(params, sort_keys=False).encode()}
    uri = resolve_tracking_uri(cfg)
    with store_lock(uri):  # one process at a time sets up and writes a SQLite store
        mlflow.set_tracking_uri(uri)
        exp_id = _experiment_id(mlflow, cfg.experiment, uri)
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags or {}) as run:
            flat = {k: ("null" if v is None else v) for k, v in flatten(params).items()}
            mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})
            clean = {k: float(v) for k, v in metrics.items() if v is not None and v == v}
            if clean:
                mlflow.log_metrics(clean)
            for name, values in (metric_series or {}).items():
                for step, v in enumerate(values):
                    mlflow.log_metric(name, float(v), step=step)
            with tempfile.TemporaryDirectory() as tmp:
                for rel, data in artifacts.items():
                    p = Path(tmp) / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(data)
                if artifacts:
                    mlflow.log_artifacts(tmp)
            return run.info.run_id, uri


def log_job_run(summary, cfg: MlflowConfig, params: dict, metrics: dict[str, float],
                artifacts: dict[str, bytes], upload_config: bool = False) -> None:
    """One run named ``<job>-<hash8>``, tagged with job and config hash; sets
    ``summary.run_id`` / ``summary.tracking_uri`` when tracking is on."""
    logged = log_run(cfg, f"{summary.job}-{summary.config_hash[:8]}", params, metrics, artifacts,
                     tags={"config_hash": summary.config_hash, "job": summary.job}, upload_config=upload_config)
    if logged:
        summary.run_id, summary.tracking_uri = logged
