"""Config sections shared by every job: Ray, storage and MLflow."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run. ``address: null`` starts a local Ray in-process
    (RAY_ADDRESS, when set, wins over a local start); actors share the node's CPUs."""

    address: str | None = None
    actors: int = 2
    num_gpus: float = 0.0
    num_cpus_per_actor: float = 0.5
    batch_size: int = 4
    num_cpus: int | None = None
    object_store_mb: int = 1024
    torch_threads: int | None = None


@dataclass(frozen=True)
class StorageConfig:
    """fsspec/S3 options. Credentials come from the usual AWS variables, never from here."""

    endpoint_url: str | None = None
    anon: bool = False
    region: str | None = None


@dataclass(frozen=True)
class MlflowConfig:
    """``tracking_uri: null`` -> $MLFLOW_TRACKING_URI, else ``sqlite:///./runs/mlflow.db``."""

    tracking_uri: str | None = None
    experiment: str = "restoray"
    enabled: bool = True
