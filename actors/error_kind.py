"""Is a failed row worth retrying? ``error_kind(exc)``: "transient" or "permanent".

Transient: the failure says nothing about the input, a later run may well succeed: storage
and network errors (connection refused or reset, timeouts, an S3 endpoint that is down),
OSErrors of the filesystem layer other than not-found / permission (EIO, ENOSPC, stale
handles), memory exhaustion and lost Ray workers or objects. Permanent: everything else: a
corrupt file or one that is not an image or video (``MediaError``, a ``ValueError``), an
input too large for this config, bad parameters, a missing or unreadable file, a bug.

Decided from the exception's type alone (its class and bases, matched by name so that
botocore, aiohttp, Ray and torch need not be imported here), so one rule serves every
stage, the storage retries (pipelines/storage.py) and rows written before kinds existed
(``kind_of_type`` on the recorded ``error_type``). Standard library only.
"""
from __future__ import annotations

import errno
from typing import Literal

Kind = Literal["permanent", "transient"]
PERMANENT: Kind = "permanent"
TRANSIENT: Kind = "transient"

# OSErrors about the path or the request, not the moment: retrying cannot help (the errnos
# s3fs gives S3's 4xx codes included: InvalidArgument -> EINVAL, 405 -> EPERM, redirects -> EREMCHG)
_PERMANENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
_PERMANENT_ERRNO = frozenset(getattr(errno, n) for n in (
    "EINVAL", "ENAMETOOLONG", "EMSGSIZE", "EPERM", "EACCES", "ENOENT", "EEXIST", "EISDIR", "ENOTDIR", "ENOTEMPTY",
    "ELOOP", "EROFS", "ENOSYS", "EREMCHG", "EBADF", "EFBIG") if hasattr(errno, n))
# transient by class name (any module): timeouts, lost connections, lost workers, no memory
_TRANSIENT_NAMES = frozenset({
    "TimeoutError", "ConnectionError", "MemoryError", "OutOfMemoryError",  # builtins, botocore, torch, ray
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
    "ResponseStreamingError", "IncompleteReadError", "ProxyConnectionError",  # botocore
    "ClientConnectionError", "ClientPayloadError", "ServerTimeoutError", "ServerDisconnectedError",  # aiohttp
    "IncompleteRead", "RemoteDisconnected", "ProtocolError",  # http.client, urllib3
    "RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
    "ObjectLostError", "OwnerDiedError", "ObjectFetchTimedOutError", "GetTimeoutError",
    "ObjectStoreFullError", "RaySystemError",  # ray.exceptions
})
# transient names that other libraries also use for permanent errors: only from these modules
_TRANSIENT_BY_MODULE = {"HTTPClientError": "botocore", "SlowDownError": "botocore"}


def error_kind(exc: BaseException) -> Kind:
    """"transient" when retrying ``exc``'s operation later may succeed, else "permanent"."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _TRANSIENT_NAMES:
            return TRANSIENT
        module = _TRANSIENT_BY_MODULE.get(cls.__name__)
        if module and cls.__module__.split(".")[0] == module:
            return TRANSIENT
    if isinstance(exc, OSError) and not isinstance(exc, _PERMANENT_OS) and exc.errno not in _PERMANENT_ERRNO:
        return TRANSIENT  # the filesystem layer: EIO, ENOSPC, ESTALE, S3's 500 / 503 (EREMOTEIO, EBUSY) ...
    return PERMANENT


def kind_of_type(type_name: str) -> Kind:
    """The kind of an error known only by its class name (an ``errors`` row written before
    kinds were recorded): builtin names are resolved, unknown ones matched by name."""
    import builtins

    cls = getattr(builtins, type_name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return error_kind(cls())
        except TypeError:  # needs arguments (UnicodeDecodeError, ExceptionGroup): not transient
            return PERMANENT
    return TRANSIENT if type_name in _TRANSIENT_NAMES else PERMANENT
