"""Solver, prior and degradation specs written out to their full defaults at load, so a dry
run, the MLflow params and the config hash see every value a row runs with, and a config
that writes a default out hashes like one that leaves it implicit. Each function is
idempotent and changes no result: the operators read a resolved spec as they read the
spec it came from.

- Degradation: ``build_degradation(spec).spec()``. With ``sampled`` (synth-pairs, whose
  crops go through ``sample_degradation``), keys a family's ``sample`` draws when they are
  absent stay absent (``DRAWN_WHEN_ABSENT``), since writing the class default would fix them.
- Prior: the builder's keyword defaults (operators.priors), under the spec's own keys.
- Solver: ``name``, ``nfe``, ``samples``, ``estimate``, ``preset``, then every field of the
  solver's config dataclass: the dataclass default, under the per-task preset of the
  degradation's family (operators.solvers.presets; symbolic values such as
  ``sigma_max: measurement`` stay symbolic, they resolve per row), under the spec's own keys.
  ``preset`` stays as given (``auto`` when absent) and is recorded. Where the family is not
  known at load (an evaluate method, applied to several tasks, with ``preset: auto``), the
  fields some preset of the solver sets are left to the row.
"""
from __future__ import annotations

import inspect
from typing import Any

# family -> (the key whose absence makes ``sample`` draw, the keys it then draws)
DRAWN_WHEN_ABSENT = {"blur": ("sigma", ("sigma", "angle"))}


def resolve_degradation(spec: dict, sampled: bool = False) -> dict:
    """The full spec of a degradation (``build_degradation(spec).spec()``); see the module
    docstring for ``sampled``."""
    from operators.degradations import build_degradation

    full = build_degradation(dict(spec)).spec()
    drawn = DRAWN_WHEN_ABSENT.get(full["name"])
    if sampled and drawn is not None and drawn[0] not in spec:
        full = {k: v for k, v in full.items() if k not in drawn[1] or k in spec}
    return full


def resolve_prior(spec: dict) -> dict:
    """``{name, **builder defaults, **spec}``; a key without a default (diffusers ``model``)
    is the spec's own."""
    from operators.priors import PRIORS

    params = inspect.signature(PRIORS.get(spec["name"])).parameters
    defaults = {k: p.default for k, p in params.items() if k != "device" and p.default is not inspect.Parameter.empty}
    return {"name": spec["name"], **defaults, **spec}


def resolve_solver(spec: dict, degradation: dict | None = None, with_nfe: bool = True) -> dict:
    """The full spec of a solver for rows of ``degradation`` (None: not known at load). A spec
    without ``nfe`` or the posterior's ``samples`` gets the solver's ``RUN_DEFAULTS`` (20 NFE,
    fewer for the blind samplers); ``with_nfe`` False: the spec carries no NFE of its own
    (evaluate's methods give theirs beside it), only the samples default is written."""
    from operators.solvers import CONFIGS, SOLVERS
    from operators.solvers.posterior import KEYS, PosteriorConfig

    name = spec["name"]
    SOLVERS.get(name)
    head: dict[str, Any] = {"name": name}
    spec = {**{k: v for k, v in CONFIGS[name].RUN_DEFAULTS.items() if with_nfe or k != "nfe"}, **spec}
    if "nfe" in spec:
        head["nfe"] = spec["nfe"]
    posterior = PosteriorConfig()
    head.update({k: spec.get(k, getattr(posterior, k)) for k in KEYS})
    head["preset"] = "auto" if spec.get("preset") is None else spec["preset"]
    given = {k: v for k, v in spec.items() if k not in head}
    fields = CONFIGS[name]().to_dict()
    values = preset_for(name, head["preset"], degradation, spec.get("init"))
    if values is None:
        left = preset_keys(name)
        return {**head, **{k: v for k, v in fields.items() if k not in left}, **given}
    return {**head, **fields, **values, **given}


def preset_for(solver: str, preset: str, degradation: dict | None, init: dict | None = None) -> dict | None:
    """The preset values a row runs with, or None when they depend on the row's family (with
    ``init``, a learned start, rows the estimator accepts run the ``refine`` family)."""
    from operators.solvers.presets import preset_values, task_family

    if preset == "none":
        return {}
    if preset != "auto":
        return preset_values(solver, preset)
    if init is not None:
        return preset_values(solver, "refine")
    if degradation is None:
        return None
    from operators.degradations import build_degradation

    return preset_values(solver, task_family(build_degradation(dict(degradation))))


def preset_keys(solver: str) -> set[str]:
    """Every key some family's preset of ``solver`` sets (its inherited presets included)."""
    from operators.solvers.presets import FAMILIES, preset_values

    return {k for family in FAMILIES for k in preset_values(solver, family)}
