"""Credentials in URIs never reach MLflow params/artifacts or the console."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.redact import redact_config, redact_uri
from pipelines.sections import MlflowConfig
from pipelines.summary import JobSummary
from tests.conftest import mlflow_store

REPO = Path(__file__).resolve().parents[2]
SECRETS = ("pass", "tok3n", "SIG123")


@pytest.mark.parametrize("uri, expected", [
    ("postgresql://user:pass@host/db", "postgresql://host/db"),
    ("https://user:tok3n@host:8080/x?sig=SIG123#frag", "https://host:8080/x"),
    ("s3://bucket/key.png?X-Amz-Signature=SIG123", "s3://bucket/key.png"),
    ("sqlite:////tmp/runs/mlflow.db", "sqlite:////tmp/runs/mlflow.db"),
    ("./runs/restore?x", "./runs/restore?x"),  # a path, not a URI
])
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


def test_redact_config_walks_nested_values():
    cfg = {"input": "s3://b/in?token=SIG123", "n": 3, "mlflow": {"tracking_uri": "postgresql://u:pass@h/db"},
           "datasets": [{"path": "https://u:tok3n@h/d"}], "name": "diffpir"}
    out = redact_config(cfg)
    assert out == {"input": "s3://b/in", "n": 3, "mlflow": {"tracking_uri": "postgresql://h/db"},
                   "datasets": [{"path": "https://h/d"}], "name": "diffpir"}
    assert cfg["input"].endswith("SIG123")  # the original is untouched


def test_log_run_params_and_config_artifact_are_redacted(tmp_path):
    import mlflow

    from pipelines.tracking import log_run

    uri = mlflow_store(tmp_path)
    params = {"input": "https://user:tok3n@host/in?sig=SIG123", "reference": "s3://b/ref?token=SIG123",
              "mlflow": {"tracking_uri": "postgresql://user:pass@db/x"}}
    run_id, _ = log_run(MlflowConfig(tracking_uri=uri, experiment="redact"), "r", params, {"m": 1.0}, {},
                        upload_config=True)
    client = mlflow.tracking.MlflowClient(uri)
    logged = client.get_run(run_id).data.params
    assert logged["input"] == "https://host/in" and logged["mlflow.tracking_uri"] == "postgresql://db/x"
    text = Path(client.download_artifacts(run_id, "config.yaml", str(tmp_path))).read_text()
    assert "https://host/in" in text
    for s in SECRETS:
        assert not any(s in v for v in logged.values()) and s not in text


def test_summary_table_and_dry_run_hide_secrets(capsys):
    s = JobSummary(job="restore-images", output="s3://b/out?token=SIG123", config_hash="0" * 16,
                   run_id="abc", tracking_uri="https://user:tok3n@mlflow.example")
    table = s.table()
    assert "s3://b/out" in table and "https://mlflow.example" in table
    assert main(["run", str(REPO / "configs/quickstart.yaml"), "--dry-run",
                 "--set", "mlflow.tracking_uri=postgresql://user:pass@host/db",
                 "--set", "mlflow.enabled=false",  # enabled, the URI is checked at load (no driver here)
                 "--set", "output=https://user:tok3n@host/out?sig=SIG123"]) == 0
    out = capsys.readouterr().out
    assert "postgresql://host/db" in out and "https://host/out" in out
    for sec in SECRETS:
        assert sec not in table and sec not in out
