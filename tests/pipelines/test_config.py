from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from pipelines.config import (
    ConfigError,
    apply_overrides,
    config_hash,
    flatten,
    from_dict,
)


@dataclass(frozen=True)
class Inner:
    a: int = 1
    mode: Literal["x", "y"] = "x"


@dataclass(frozen=True)
class Outer:
    name: str
    ratio: float = 0.5
    opt: str | None = None
    items: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


def test_valid_config_round_trip():
    cfg = from_dict(Outer, {"name": "n", "ratio": 1, "items": [1, 2], "inner": {"mode": "y"}})
    assert cfg == Outer("n", 1.0, None, [1, 2], Inner(1, "y"))
    assert isinstance(cfg.ratio, float)


@pytest.mark.parametrize("data, needle", [
    ({"name": "n", "bogus": 1}, "unknown config key 'bogus'; valid keys: inner, items, name, opt, ratio"),
    ({"name": "n", "inner": {"b": 2}}, "unknown config key 'inner.b'"),
    ({"name": "n", "ratio": "high"}, "'ratio': expected a number"),
    ({"name": "n", "inner": {"a": 1.5}}, "'inner.a': expected an integer"),
    ({"name": "n", "inner": {"mode": "z"}}, "'inner.mode': 'z' is not valid; valid choices: 'x' | 'y'"),
    ({"name": "n", "items": [1, "two"]}, "'items[1]'"),
    ({}, "missing required config key 'name'"),
])
def test_errors_name_the_key(data, needle):
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, data)
    assert needle in str(e.value)


def test_overrides_parse_yaml_values():
    d = apply_overrides({"solver": {"name": "diffpir"}}, ["solver.nfe=50", "ray.address=null", "x=[1, 2]"])
    assert d == {"solver": {"name": "diffpir", "nfe": 50}, "ray": {"address": None}, "x": [1, 2]}
    with pytest.raises(ConfigError):
        apply_overrides({}, ["no-equals-sign"])


def test_hash_ignores_excluded_keys_and_flatten():
    a = from_dict(Outer, {"name": "n", "ratio": 0.1})
    b = from_dict(Outer, {"name": "n", "ratio": 0.2})
    assert config_hash(a) != config_hash(b)
    assert config_hash(a, ("ratio",)) == config_hash(b, ("ratio",))
    assert flatten({"a": {"b": 1, "c": [1]}, "d": None}) == {"a.b": 1, "a.c": "[1]", "d": None}


def test_restore_without_synthesis_needs_a_concrete_degradation():
    import pytest

    from pipelines.config import ConfigError, from_dict
    from pipelines.restore_images import RestoreImagesConfig

    def cfg(deg):
        return from_dict(RestoreImagesConfig, {"input": "x", "synthesize": False, "degradation": deg})

    cfg({"name": "sr", "scale": 4}).validate()
    cfg({"name": "blur", "kind": "gaussian", "sigma": 2.0}).validate()
    for deg, word in (({"name": "inpaint"}, "mask"), ({"name": "blur", "kind": "motion"}, "motion kernel"),
                      ({"name": "realesrgan", "scale": 4}, "chain")):
        with pytest.raises(ConfigError, match=f"synthesize: false.*{word}"):
            cfg(deg).validate()
    from_dict(RestoreImagesConfig, {"input": "x", "degradation": {"name": "inpaint"}}).validate()  # synthesized: fine
