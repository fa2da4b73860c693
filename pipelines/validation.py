"""Config checks every job shares: numbers finite and in range, the Ray pool within the
machine, and the output outside the inputs. Each raises one ConfigError naming the key.
"""
from __future__ import annotations

import math
import os
import posixpath

from pipelines.config import ConfigError
from pipelines.redact import redact_uri

GLOB_CHARS = "*?["
RAY_MIN_OBJECT_STORE_MB = 75  # ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_finite(data, key: str = "") -> None:
    """Every number in a config tree (dicts and lists, the free-form specs included) is finite:
    YAML's ``.nan`` and ``.inf`` are never a setting."""
    if isinstance(data, dict):
        for k, v in data.items():
            check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            check_finite(v, f"{key}[{i}]")
    elif _is_number(data) and not math.isfinite(data):
        raise ConfigError(f"config key '{key}': must be a finite number, got {data}")


def check_at_least(key: str, value, low, optional: bool = False) -> None:
    """``value >= low`` (a size: 1, a count: 0); None passes when ``optional``."""
    if value is None and optional:
        return
    if not _is_number(value) or not value >= low:
        raise ConfigError(f"config key '{key}': must be >= {low}{' or null' if optional else ''}, got {value!r}")


def check_positive(key: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not _is_number(value) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"config key '{key}': must be a finite number > 0, got {value!r}")


def check_ray(ray, key: str = "ray") -> None:
    """Sizes of the Ray section, then the pool against a local machine: ``actors`` x
    ``num_cpus_per_actor`` within ``num_cpus`` (default: this machine's CPUs), GPUs likewise.
    A cluster joined by address is sized when joined (pipelines.ray_runtime)."""
    for name in ("actors", "batch_size", "solve_batch"):
        check_at_least(f"{key}.{name}", getattr(ray, name), 1)
    check_at_least(f"{key}.num_cpus", ray.num_cpus, 1, optional=True)
    check_at_least(f"{key}.torch_threads", ray.torch_threads, 1, optional=True)
    check_at_least(f"{key}.object_store_mb", ray.object_store_mb, RAY_MIN_OBJECT_STORE_MB)
    check_at_least(f"{key}.num_gpus", ray.num_gpus, 0)
    check_positive(f"{key}.num_cpus_per_task", ray.num_cpus_per_task)
    if ray.num_gpus == 0:
        check_positive(f"{key}.num_cpus_per_actor", ray.num_cpus_per_actor)
    else:
        check_at_least(f"{key}.num_cpus_per_actor", ray.num_cpus_per_actor, 0)
    if ray.address or os.environ.get("RAY_ADDRESS"):
        return
    most, why = pool_limit(ray, ray.num_cpus or os.cpu_count() or 1, local_gpus() if ray.num_gpus else 0)
    if ray.actors > most:
        raise ConfigError(f"config key '{key}.actors': {ray.actors} actors do not fit on this machine: "
                          f"at most {most} ({why}); lower {key}.actors or the per-actor resources")


def pool_limit(ray, cpus: float, gpus: float) -> tuple[int, str]:
    """(the most actors ``cpus`` and ``gpus`` can host, the arithmetic, for a message)."""
    limits = []
    if ray.num_cpus_per_actor > 0:
        limits.append((int(cpus / ray.num_cpus_per_actor + 1e-9),
                       f"{cpus:g} CPUs / num_cpus_per_actor {ray.num_cpus_per_actor:g}"))
    if ray.num_gpus > 0:
        limits.append((int(gpus / ray.num_gpus + 1e-9), f"{gpus:g} GPUs / num_gpus {ray.num_gpus:g}"))
    return min(limits) if limits else (ray.actors, "")


def local_gpus() -> int:
    """GPUs a local Ray would see (CUDA_VISIBLE_DEVICES respected)."""
    import torch

    return torch.cuda.device_count()


def location(uri: str) -> tuple[str, str]:
    """(protocol, normalised path) a URI names, for comparing where two URIs point: local paths
    resolved (symlinks, ~, ..), object-store paths normalised, a glob cut to its fixed folder."""
    import fsspec

    protocol, path = fsspec.core.split_protocol(uri)
    protocol = {None: "file", "local": "file", "s3a": "s3", "gs": "gcs"}.get(protocol, protocol)
    while any(c in path for c in GLOB_CHARS):
        path = posixpath.dirname(path)
    if protocol == "file":
        return protocol, os.path.realpath(os.path.expanduser(path or "."))
    return protocol, posixpath.normpath("/" + path.strip("/"))


def check_output_outside(output: str, inputs: dict[str, str], key: str = "output") -> None:
    """The output is neither an input folder nor inside one (a re-run would list its own outputs
    as inputs: ``restored/restored/...``). ``inputs``: {config key: URI}; built-in inputs
    (skimage://) are skipped."""
    out = location(output)
    for in_key, uri in inputs.items():
        if not uri or uri.startswith("skimage://"):
            continue
        src = location(uri)
        if out[0] == src[0] and (out[1] == src[1] or out[1].startswith(src[1].rstrip("/") + "/")):
            where = "is" if out[1] == src[1] else "is inside"
            raise ConfigError(f"config key '{key}': {redact_uri(output)} {where} the input '{in_key}' "
                              f"({redact_uri(uri)}); "
                              f"write the output somewhere else")
