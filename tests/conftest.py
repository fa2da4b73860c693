"""Test-session environment: quiet offline Ray/MLflow, dummy AWS credentials, shared data path."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S": "120",
    "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
for _k, _v in _ENV.items():
    os.environ.setdefault(_k, _v)
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
if os.environ.get("PYTEST_XDIST_WORKER") or "RAY_TMPDIR" not in os.environ:
    # one Ray temp folder per test process (pytest-xdist runs two, each with its own local Ray)
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rr", dir="/tmp")


def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip (saying why) without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


_MLFLOW_TEMPLATE: list[Path] = []


def mlflow_store(directory: Path, name: str = "mlflow.db") -> str:
    """``sqlite:///<directory>/<name>``, a store copied (unless there already) from one that
    MLflow created once per session: creating and migrating a SQLite store's schema takes
    3-4 s (10-15 s on a loaded machine), copying the file milliseconds. Tests of store
    creation itself (the set-up race: test_lease.py) use a fresh path instead."""
    if not _MLFLOW_TEMPLATE:
        import mlflow

        folder = tempfile.mkdtemp(prefix="rrml", dir="/tmp")
        atexit.register(shutil.rmtree, folder, True)
        template = Path(folder) / "template.db"
        mlflow.MlflowClient(f"sqlite:///{template}").search_experiments()  # creates the schema
        _MLFLOW_TEMPLATE.append(template)
    target = Path(directory) / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_MLFLOW_TEMPLATE[0], target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole test session (startup is seconds; never per test)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 object_store_memory=512 * 1024 * 1024, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's threaded server) on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test (small tensors: more threads only contend)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
