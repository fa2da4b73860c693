"""Typed job configs: YAML -> frozen dataclasses, validated at load with clear errors.

A job config is a dataclass tree. ``load_config`` checks every key against the dataclass
fields (unknown keys and wrong types are errors naming the key path and the valid choices),
applies ``--set key.path=value`` overrides first, and returns the typed config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A config problem; the message names the key and what would be valid."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (converted where lossless)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{path}': expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"config key '{path}': {value!r} is not valid; valid choices: {_type_name(tp)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}': expected a mapping, got {value!r}")
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}': expected a list, got {value!r}")
        (item,) = get_args(tp)[:1] or (Any,)
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}': expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")


def from_dict(cls: type, data: dict, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"'{path}.{unknown[0]}'" if path else f"'{unknown[0]}'"
        raise ConfigError(f"unknown config key {where}; valid keys{' under ' + repr(path) if path else ''}: "
                          f"{', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required config key '{key}'")
    return cls(**kwargs)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` strings (values parsed as YAML) to a nested dict, in place.
    A numeric part indexes a list: ``datasets.0.limit=3``."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key.path=value, got {item!r}")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[_list_index(node, part, key)]
                continue
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {} if node.get(part) is None else node[part]
                if not isinstance(node[part], dict):
                    raise ConfigError(f"--set {key}: '{part}' is not a mapping")
            node = node[part]
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            detail = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({detail})") from None
        if isinstance(node, list):
            node[_list_index(node, parts[-1], key)] = value
        else:
            node[parts[-1]] = value
    return data


def _list_index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {key}: '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at its top level")
    return data


def to_dict(cfg: Any) -> dict:
    """The config as plain data; the keys its class declares come first, then those of each
    base class in turn (a job's own keys before pipelines.job.JobConfig's, whose sections come
    last), so a dry run reads like the YAML."""
    d = dataclasses.asdict(cfg)
    order = [k for c in type(cfg).__mro__ for k in vars(c).get("__annotations__", {}) if k in d]
    return {**{k: d[k] for k in dict.fromkeys(order)}, **d}


def config_hash(cfg: Any, exclude: tuple[str, ...] = (), extra: dict | None = None) -> str:
    """A short stable hash of the config keys that change results (``exclude`` the rest), plus
    ``extra`` (what the config names but does not hold, e.g. a weights file's digest) when given."""
    d = {k: v for k, v in to_dict(cfg).items() if k not in exclude}
    if extra:
        d["__extra__"] = extra
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out
