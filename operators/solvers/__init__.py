"""Restoration solvers, one file each, registered by name.

Every solver is ``solve_<name>(y, degradation, prior, *, nfe, generator, config=None,
callback=None) -> SolverOutput`` with a frozen config dataclass (``solver_config(name, ...)``).
"""
from __future__ import annotations

from typing import Any, Callable

from operators.registry import Registry
from operators.solvers.base import SolverOutput, karras_sigmas
from operators.solvers.conditional import ConditionalSolverConfig, solve_conditional
from operators.solvers.config import SolverConfig, build_config
from operators.solvers.ddnm import DDNMConfig, solve_ddnm
from operators.solvers.diffpir import DiffPIRConfig, solve_diffpir
from operators.solvers.dps import DPSConfig, solve_dps
from operators.solvers.indigo import IndigoConfig, solve_indigo
from operators.solvers.irsde import IRSDESolverConfig, solve_irsde
from operators.solvers.langevin import LangevinConfig, solve_langevin
from operators.solvers.langevin_video import LangevinVideoConfig, solve_langevin_video
from operators.solvers.latent_dps import LatentDPSConfig, solve_latent_dps
from operators.solvers.pnp_ula import PnPULAConfig, solve_pnp_ula
from operators.solvers.presets import resolve_spec
from operators.solvers.reld import RELDConfig, solve_reld
from operators.solvers.tiling import TiledPrior
from operators.solvers.ud2m import UD2MConfig, solve_ud2m

SOLVERS: Registry[Callable[..., SolverOutput]] = Registry("solver")
BLIND_SOLVERS = ("conditional", "indigo", "irsde")  # restore from y and the scale alone (issue 12)
CONFIGS: dict[str, type[SolverConfig]] = {}

for _name, _fn, _cfg in [
    ("dps", solve_dps, DPSConfig),
    ("ddnm", solve_ddnm, DDNMConfig),
    ("diffpir", solve_diffpir, DiffPIRConfig),
    ("pnp_ula", solve_pnp_ula, PnPULAConfig),
    ("langevin", solve_langevin, LangevinConfig),
    ("langevin_video", solve_langevin_video, LangevinVideoConfig),
    ("reld", solve_reld, RELDConfig),
    ("latent_dps", solve_latent_dps, LatentDPSConfig),
    ("ud2m", solve_ud2m, UD2MConfig),
    ("indigo", solve_indigo, IndigoConfig),
    ("irsde", solve_irsde, IRSDESolverConfig),
    ("conditional", solve_conditional, ConditionalSolverConfig),
]:
    SOLVERS.register(_name, _fn)
    CONFIGS[_name] = _cfg


def get_solver(name: str) -> Callable[..., SolverOutput]:
    """The solver function registered as ``name`` (an error lists the valid names)."""
    return SOLVERS.get(name)


def solver_config(name: str, **overrides: Any) -> SolverConfig:
    """The solver's frozen config with ``overrides``; unknown keys raise, naming them."""
    SOLVERS.get(name)
    return build_config(CONFIGS[name], name, overrides)


def with_run_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the solver's ``RUN_DEFAULTS`` (nfe, samples) where it leaves them out."""
    SOLVERS.get(spec["name"])
    return {**CONFIGS[spec["name"]].RUN_DEFAULTS, **spec}


def row_config(name: str, spec: dict[str, Any], degradation: Any) -> tuple[SolverConfig, str]:
    """(config, preset family used) of solver ``name`` for one row's ``degradation``: the
    shipped preset of its task family (configs/presets.yaml) overlaid by ``spec``'s keys
    (``preset: auto | none | <family>`` picks; see :mod:`operators.solvers.presets`)."""
    SOLVERS.get(name)
    keys, preset = resolve_spec(name, spec, degradation)
    return build_config(CONFIGS[name], name, keys), preset


__all__ = [
    "SOLVERS", "BLIND_SOLVERS", "CONFIGS", "get_solver", "solver_config", "row_config", "with_run_defaults",
    "SolverOutput", "SolverConfig",
    "karras_sigmas", "TiledPrior", "DPSConfig", "DDNMConfig", "DiffPIRConfig", "PnPULAConfig",
    "LangevinConfig", "LangevinVideoConfig", "RELDConfig", "LatentDPSConfig", "UD2MConfig",
    "IndigoConfig", "IRSDESolverConfig", "ConditionalSolverConfig",
]
