"""The MLflow tracking URI checked at config load, before any work: a run that cannot be
logged must fail in a second, not after every image is restored.

What is checked, without creating anything: the scheme is one MLflow serves (its built-in
stores and any ``mlflow.tracking_store`` plugin); a database URI's SQLAlchemy dialect and
Python driver import (``postgresql://`` without psycopg -> error); a SQLite file or a local
store folder can be written; an HTTP tracking server answers.
"""
from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

from pipelines.config import ConfigError
from pipelines.redact import redact_uri

DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # mlflow.store.db.db_types.DATABASE_ENGINES
BUILTIN_SCHEMES = ("", "file", "http", "https", "databricks", "databricks-uc", "uc", *DB_SCHEMES)
HTTP_TIMEOUT_S = 5.0


def tracking_uri_of(cfg) -> str:
    """The URI a run would log to (pipelines.tracking.resolve_tracking_uri, without creating ./runs)."""
    from pipelines.tracking import DEFAULT_DB

    return cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).absolute()}"


def check_tracking_uri(cfg, key: str = "mlflow.tracking_uri") -> None:
    """ConfigError naming ``key`` when the tracking URI of an enabled MlflowConfig cannot work."""
    if not cfg.enabled:
        return
    uri = tracking_uri_of(cfg)
    problem = tracking_problem(uri)
    if problem:
        raise ConfigError(f"config key '{key}': {redact_uri(uri)}: {problem}")


def tracking_problem(uri: str) -> str | None:
    scheme = urlsplit(uri).scheme if "://" in uri or uri.startswith("file:") else ""
    base = scheme.split("+", 1)[0]
    plugins = {e.name for e in entry_points(group="mlflow.tracking_store")}
    if base not in BUILTIN_SCHEMES and scheme not in plugins:
        return (f"unknown tracking scheme {scheme!r}; MLflow serves "
                f"{', '.join(s for s in BUILTIN_SCHEMES if s) + ''.join(', ' + p for p in sorted(plugins))}, "
                f"or a local folder")
    if base in DB_SCHEMES:
        return _database_problem(uri, base)
    if base in ("", "file"):
        return _writable_problem(Path(urlsplit(uri).path if scheme else uri).expanduser(), "store folder")
    if base in ("http", "https"):
        return _server_problem(uri)
    return None


def _database_problem(uri: str, base: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except Exception as e:  # noqa: BLE001 - any SQLAlchemy failure means MLflow could not connect
        return f"not a database URI SQLAlchemy can use ({type(e).__name__}: {e})"
    try:
        dialect.import_dbapi()
    except ImportError as e:
        return (f"its database driver is not installed ({e}); install the {url.drivername} driver "
                f"or track to sqlite:///<path>")
    if base == "sqlite":
        return _writable_problem(Path(url.database or ""), "SQLite database") if url.database else None
    return None


def _writable_problem(path: Path, what: str) -> str | None:
    """None when ``path`` can be created or written: it is a writable file/folder, or its
    nearest existing parent is a writable folder (MLflow creates the rest)."""
    path = path.absolute()
    if path.exists():
        ok = os.access(path, os.W_OK) and (path.is_dir() if what == "store folder" else path.is_file())
        return None if ok else f"the {what} {path} is not a writable {'folder' if what == 'store folder' else 'file'}"
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        return f"the {what} {path} cannot be created ({parent} is not a writable folder)"
    return None


def _server_problem(uri: str) -> str | None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=HTTP_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return None  # the server answered (an auth or routing reply still means it is there)
    except (urllib.error.URLError, OSError) as e:
        return f"the tracking server does not answer within {HTTP_TIMEOUT_S:g} s ({getattr(e, 'reason', e)})"
    return None
