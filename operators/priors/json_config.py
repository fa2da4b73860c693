"""A mixin for frozen config dataclasses saved as JSON next to weights (safetensors metadata)."""
from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import TypeVar

C = TypeVar("C", bound="JsonConfig")


class JsonConfig:
    """``to_json`` / ``from_json`` for a dataclass; unknown keys fail with the valid ones."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        d = json.loads(text)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid: {sorted(known)}")
        return cls(**d)
