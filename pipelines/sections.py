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

    def validate(self, key: str = "ray") -> None:
        """Sizes >= 1 and the actor pool within what the cluster can host (pipelines.validation)."""
        from pipelines.validation import check_ray

        check_ray(self, key)


@dataclass(frozen=True)
class StorageConfig:
    """fsspec/S3 options. Credentials come from the usual AWS variables, never from here."""

    endpoint_url: str | None = None
    anon: bool = False
    region: str | None = None
    connect_timeout_s: float = 10.0  # S3: seconds to connect, and to wait for each read
    read_timeout_s: float = 60.0

    def validate(self, key: str = "storage") -> None:
        from pipelines.validation import check_positive

        for name in ("connect_timeout_s", "read_timeout_s"):
            check_positive(f"{key}.{name}", getattr(self, name))


@dataclass(frozen=True)
class MlflowConfig:
    """``tracking_uri: null`` -> $MLFLOW_TRACKING_URI, else ``sqlite:///./runs/mlflow.db``."""

    tracking_uri: str | None = None
    experiment: str = "restoray"
    enabled: bool = True

    def validate(self, key: str = "mlflow") -> None:
        """The tracking URI's scheme is known and its driver, folder or server is there, so a
        job never finishes its work only to fail logging it (pipelines.tracking_check)."""
        from pipelines.tracking_check import check_tracking_uri

        check_tracking_uri(self, f"{key}.tracking_uri")
