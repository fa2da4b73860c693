"""The config every solver's frozen dataclass extends, and how configs are built from dicts."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="SolverConfig")


@dataclass(frozen=True)
class SolverConfig:
    """Fields shared by every solver.

    ``tile_*`` control :class:`~operators.solvers.tiling.TiledPrior`: D runs on overlapping
    ``tile_size`` tiles (in the prior's own space: pixels, or latent pixels for a latent
    prior) blended with raised-cosine ramps over ``tile_overlap`` whenever H * W of its input
    exceeds ``tile_max_pixels``. ``prompt`` goes to text-conditioned priors.

    ``RUN_DEFAULTS``: what a spec that leaves out ``nfe`` (or the posterior's ``samples``) runs
    with: 20 NFE unless a solver measured better (the few-step blind samplers lose PSNR with more
    steps: each adds noise their regression-trained networks do not fully remove).
    """

    RUN_DEFAULTS: ClassVar[dict[str, int]] = {"nfe": 20}

    tile_max_pixels: int = 512 * 512
    tile_size: int = 256
    tile_overlap: int = 64
    tile_batch: int = 4
    prompt: str | None = None

    def __post_init__(self) -> None:
        if self.tile_size < 1 or not 0 <= 2 * self.tile_overlap <= self.tile_size:
            raise ValueError(
                f"need tile_size >= 1 and 0 <= 2 * tile_overlap <= tile_size, "
                f"got tile_size={self.tile_size}, tile_overlap={self.tile_overlap}"
            )
        if self.tile_max_pixels < 1 or self.tile_batch < 1:
            raise ValueError("tile_max_pixels and tile_batch must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; ``build_config(type(c), "name", c.to_dict()) == c``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def build_config(cls: type[C], solver: str, overrides: dict[str, Any]) -> C:
    """``cls(**overrides)`` with a clear error naming unknown keys (lists become tuples)."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(map(repr, unknown))} for solver {solver!r}; "
            f"valid keys: {', '.join(valid)}"
        )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return cls(**kwargs)


def resolve_config(config: Any, cls: type[C], solver: str) -> C:
    """None -> defaults; a dict -> :func:`build_config`; an instance of ``cls`` -> itself."""
    if config is None:
        return cls()
    if isinstance(config, dict):
        return build_config(cls, solver, config)
    if isinstance(config, cls):
        return config
    raise TypeError(f"solver {solver!r} takes a {cls.__name__} (or a dict), got {type(config).__name__}")
