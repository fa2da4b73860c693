"""Keep credentials out of MLflow, logs and the console: URIs lose userinfo and query strings.

``postgresql://user:pass@host/db`` -> ``postgresql://host/db``;
``s3://bucket/key?X-Amz-Signature=...`` -> ``s3://bucket/key``.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def looks_like_uri(value: str) -> bool:
    """``scheme://...`` (a plain path or a bare word is not a URI)."""
    return bool(_URI.match(value))


def redact_uri(uri: str) -> str:
    """Drop ``user:password@`` and ``?query`` (and ``#fragment``) from a URI; others pass through."""
    if not isinstance(uri, str) or not looks_like_uri(uri):
        return uri
    try:
        parts = urlsplit(uri)
        host = parts.netloc.rsplit("@", 1)[-1]
    except ValueError:  # a malformed URI: keep only the scheme, never the rest
        return uri.split("://", 1)[0] + "://<redacted>"
    return f"{uri.split(':', 1)[0]}://{host}{parts.path}"  # urlunsplit drops sqlite:////'s empty host


def redact_config(value: Any) -> Any:
    """A copy of a config tree (dicts, lists) with every URI-like string redacted."""
    if isinstance(value, dict):
        return {k: redact_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_config(v) for v in value]
    if isinstance(value, str):
        return redact_uri(value)
    return value
