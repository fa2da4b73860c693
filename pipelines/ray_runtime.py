"""Starting or joining Ray, and the actor-pool arguments for a model stage."""
from __future__ import annotations

import logging
import os

import ray

from pipelines.sections import RayConfig

log = logging.getLogger(__name__)


def init_ray(cfg: RayConfig) -> None:
    """Join ``cfg.address`` or $RAY_ADDRESS when given, else start a local Ray in-process.

    ``address="local"`` is explicit so a stale cluster left by another process is never
    joined by accident. The object store is capped (the default takes ~30% of RAM in /dev/shm).
    """
    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    runtime_env = {"env_vars": worker_env()}
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        warn_if_pool_too_big(cfg)
    else:
        ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=False,
                 object_store_memory=cfg.object_store_mb * 1024 * 1024, log_to_driver=True,
                 runtime_env=runtime_env)


# glibc malloc settings for the job's workers. Each thread that allocates gets its own arena
# (up to 8 per core) and freed blocks stay in it, so a worker that handles segment after segment
# of frames (many threads: torch, PyAV, Ray's own) grows toward the fragmented high-water mark of
# every arena: restore-video's actors held 1,303 MB at 1,000 frames vs 645 MB at 100. Two arenas
# (with actors.runtime.release_freed_memory after each segment) keep the job within 20%
# (benchmarks/video_scale.py memory; benchmarks/RESULTS.md). A fixed mmap threshold bounds it too
# but makes every large tensor an mmap/munmap with fresh zeroed pages (the embedded prior's
# forward 1.7x slower): not set. Values in the environment win.
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2"}


def worker_env() -> dict[str, str]:
    """Environment variables every worker of the job starts with (:data:`MALLOC_ENV`)."""
    return {k: os.environ.get(k, v) for k, v in MALLOC_ENV.items()}


def warn_if_pool_too_big(cfg: RayConfig) -> None:
    """A joined cluster's size is known only now (a local one is checked at config load,
    pipelines.validation.check_ray); an autoscaler may still add nodes, so this warns."""
    from pipelines.validation import pool_limit

    total = ray.cluster_resources()
    most, why = pool_limit(cfg, total.get("CPU", 0.0), total.get("GPU", 0.0))
    if cfg.actors > most:
        log.warning("ray.actors %d: the cluster now hosts at most %d actors (%s); the job waits until "
                    "the cluster grows (an autoscaler) or lower ray.actors", cfg.actors, most, why)


def task_args(cfg: RayConfig, batch_size: int) -> dict:
    """``map_batches`` keyword arguments for a load or finish stage (plain tasks): a
    fractional ``num_cpus`` (RayConfig.num_cpus_per_task), so every stage keeps a share of a
    small node and the results tables are written as rows finish."""
    return {"batch_size": batch_size, "num_cpus": cfg.num_cpus_per_task}


def actor_pool_args(cfg: RayConfig) -> dict:
    """``map_batches`` keyword arguments for a model stage: a fixed pool, fractional CPUs.

    On a small machine a pool that asks for every CPU leaves none for the read tasks and
    the job stalls; ``num_cpus_per_actor`` (default 0.5) avoids that.
    """
    args = {
        "compute": ray.data.ActorPoolStrategy(size=max(1, cfg.actors)),
        "batch_size": max(1, cfg.batch_size),
        "num_cpus": cfg.num_cpus_per_actor,
    }
    if cfg.num_gpus:
        args["num_gpus"] = cfg.num_gpus
    return args
