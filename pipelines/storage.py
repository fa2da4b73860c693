"""URIs in and out through fsspec: local paths, file://, s3:// (s3fs), memory://, ...

S3 options come from the storage config or the usual AWS environment variables
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...); credentials are never logged or stored.
Listing, reads and writes retry transient failures with backoff (``@retried``, pipelines.retry).
"""
from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from dataclasses import dataclass

import fsspec

from pipelines.local_files import read_regular_file
from pipelines.redact import redact_uri
from pipelines.retry import retried
from pipelines.sections import StorageConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputFile:
    uri: str            # full URI (protocol included for remote stores)
    relative_path: str  # path below the input root, '/'-separated


def filesystem(uri: str, storage: StorageConfig | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path-within-it) for a URI."""
    storage = storage or StorageConfig()
    protocol, path = fsspec.core.split_protocol(uri)
    protocol = protocol or "file"
    opts: dict = {}
    if protocol in ("s3", "s3a"):
        endpoint = storage.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        opts = {"anon": storage.anon}
        if endpoint:
            opts["endpoint_url"] = endpoint
        if storage.region:
            opts["client_kwargs"] = {"region_name": storage.region}
        opts["config_kwargs"] = {"connect_timeout": storage.connect_timeout_s, "read_timeout": storage.read_timeout_s}
    fs = fsspec.filesystem(protocol, **opts)
    if protocol == "file":
        path = os.path.abspath(os.path.expanduser(path))
    return fs, fs._strip_protocol(path) if protocol != "file" else path


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/', keeping the protocol."""
    protocol, path = fsspec.core.split_protocol(base)
    joined = posixpath.join(path.rstrip("/") or "/", *[p.strip("/") for p in parts])
    return f"{protocol}://{joined}" if protocol else joined


def full_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if proto in ("file", "local") else f"{proto}://{path}"


@retried
def list_inputs(uri: str, storage: StorageConfig | None = None,
                extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[InputFile]:
    """Files under a directory (recursively), a glob, or a single file, sorted by relative path.

    Every file under a directory is listed if it has an image extension; files a glob names
    explicitly are listed whatever their extension (so broken ones become error rows). Relative
    paths are as listed; FIFOs and devices are listed too: planning turns them into error rows.
    """
    fs, path = filesystem(uri, storage)
    if any(c in path for c in _GLOB_CHARS):
        root = path
        while any(c in root for c in _GLOB_CHARS):
            root = posixpath.dirname(root)
        found = [p for p, info in fs.glob(path, detail=True).items() if info.get("type") != "directory"]
    elif fs.isdir(path):
        root = path
        found = [p for p in fs.find(path) if p.lower().endswith(extensions)]
    elif fs.isfile(path):
        root = posixpath.dirname(path)
        found = [path]
    else:
        raise FileNotFoundError(f"input not found: {redact_uri(uri)}")
    files = [InputFile(full_uri(fs, p), _below(p, root)) for p in found]
    return sorted(files, key=lambda f: f.relative_path)


def _below(path: str, root: str) -> str:
    """``path`` below ``root`` as listed, not normalised (pipelines.output_paths does that, and
    refuses what escapes)."""
    prefix = root.rstrip("/") + "/"
    return path[len(prefix):].lstrip("/") if path.startswith(prefix) else posixpath.relpath(path, root)


@retried
def read_bytes(uri: str, storage: StorageConfig | None = None) -> bytes:
    """The object's bytes; a local path must be a regular file (a FIFO or device is refused,
    never read: pipelines.local_files)."""
    fs, path = filesystem(uri, storage)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return read_regular_file(path)
    with fs.open(path, "rb") as f:
        return f.read()


@retried
def write_bytes_atomic(uri: str, data: bytes, storage: StorageConfig | None = None) -> str:
    """Write so that readers see the whole file or none of it (temp file + rename locally;
    a single PUT is atomic on object stores)."""
    fs, path = filesystem(uri, storage)
    parent = posixpath.dirname(path)
    if isinstance(fs.protocol, str) and fs.protocol in ("file", "local") or "file" in fs.protocol:
        fs.makedirs(parent, exist_ok=True)
        tmp = posixpath.join(parent, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        with fs.open(path, "wb") as f:
            f.write(data)
    return uri


@retried
def put_file_atomic(local_path: str, uri: str, storage: StorageConfig | None = None) -> str:
    """Copy a local file to ``uri`` without holding it in memory; readers see all of it or
    none (temp name + rename locally; one upload on object stores). Returns ``uri``."""
    fs, path = filesystem(uri, storage)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)) or fs.protocol == "local":
        parent = posixpath.dirname(path)
        fs.makedirs(parent, exist_ok=True)
        tmp = posixpath.join(parent, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}")
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, path)
    else:
        fs.put_file(local_path, path)
    return uri
