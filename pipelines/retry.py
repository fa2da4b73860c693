"""Storage calls retried with exponential backoff on transient errors (actors/error_kind.py).

``@retried`` wraps a function that takes a ``storage: StorageConfig`` argument: a transient
failure (connection refused, timeout, S3 500/503, EIO) is retried up to ``storage.retries``
times, sleeping ``storage.retry_backoff_s * 2**attempt`` (times a random factor in [0.5, 1],
so workers that failed together do not retry together); a permanent one (not found, denied,
bad request) is raised at once, as is the last transient one. Only idempotent calls are
wrapped: whole-object reads, atomic writes (a PUT or a rename of a fresh temp file), listings.
"""
from __future__ import annotations

import functools
import inspect
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from actors.error_kind import TRANSIENT, error_kind
from pipelines.sections import StorageConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_call(fn: Callable[[], T], storage: StorageConfig | None, what: str = "storage call",
               sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()``, retried on transient errors as ``storage`` says; the last error is raised."""
    storage = storage or StorageConfig()
    attempts = 1 + max(0, storage.retries)
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt + 1 >= attempts or error_kind(exc) != TRANSIENT:
                raise
            delay = storage.retry_backoff_s * 2 ** attempt * random.uniform(0.5, 1.0)
            log.warning("%s failed (%s: %s); retry %d/%d in %.1f s", what, type(exc).__name__,
                        str(exc)[:200], attempt + 1, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def retried(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: ``fn(..., storage=...)`` retried by ``retry_call`` with its own ``storage``."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        storage = sig.bind_partial(*args, **kwargs).arguments.get("storage")
        return retry_call(lambda: fn(*args, **kwargs), storage, fn.__name__)

    return wrapper
