"""Config sections shared by every job: Ray, storage and MLflow."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run. ``address: null`` starts a local Ray in-process
    (RAY_ADDRESS, when set, wins over a local start); actors share the node's CPUs.
    ``batch_size``: rows per actor call; ``solve_batch`` (restore-images, evaluate): at most this
    many of a call's rows with equal image shape, degradation and solver config share one solver
    call (1: one row per solve), each with its own generator, so results do not depend on it;
    more rows per call use the accelerator better and need that many times the memory.
    ``num_cpus_per_task``: the CPUs each load / finish task asks for (decode, degrade, encode).
    Fractional so that Ray Data's per-stage reservation leaves every stage its share on a small
    node: at 1 CPU per load task, 2 actors x 0.5 and the loads took both CPUs of this machine,
    and the stages after the model (the results tables) waited for the last load, so a long
    job recorded no row for hours (a killed one lost them all)."""

    address: str | None = None
    actors: int = 2
    num_gpus: float = 0.0
    num_cpus_per_actor: float = 0.5
    num_cpus_per_task: float = 0.25
    batch_size: int = 4
    solve_batch: int = 1
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
    retries: int = 3  # transient failures of a read, write or listing retried (pipelines.retry)
    retry_backoff_s: float = 0.5  # first wait; doubles each retry
    connect_timeout_s: float = 10.0  # S3: seconds to connect, and to wait for each read
    read_timeout_s: float = 60.0

    def validate(self, key: str = "storage") -> None:
        from pipelines.validation import check_at_least, check_positive

        for name in ("connect_timeout_s", "read_timeout_s"):
            check_positive(f"{key}.{name}", getattr(self, name))
        check_at_least(f"{key}.retries", self.retries, 0)
        check_at_least(f"{key}.retry_backoff_s", self.retry_backoff_s, 0)


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


@dataclass(frozen=True)
class LeaseConfig:
    """One writer per output (pipelines.lease): a run holds ``<output>/_lease.json`` and
    refreshes it every ``heartbeat_s``; a second run refuses (exit 2), or waits up to
    ``wait_s`` for it; a lease not refreshed for ``stale_s`` (or whose process on this host
    is gone) is taken over. ``enabled: false`` only for outputs no other run can touch."""

    enabled: bool = True
    wait_s: float = 0.0
    stale_s: float = 120.0
    heartbeat_s: float = 15.0

    def __post_init__(self) -> None:
        from pipelines.config import ConfigError

        for name, low in (("wait_s", 0.0), ("stale_s", 1e-3), ("heartbeat_s", 1e-3)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v < float("inf"):
                raise ConfigError(f"config key 'lease.{name}': must be a finite number >= {low:g}, got {v!r}")
        if self.heartbeat_s >= self.stale_s:
            raise ConfigError(f"config keys 'lease.heartbeat_s' ({self.heartbeat_s:g}) must be below "
                              f"'lease.stale_s' ({self.stale_s:g}), or a live run's lease would look stale")
