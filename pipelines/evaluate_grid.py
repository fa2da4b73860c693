"""The evaluate job's grid: datasets x tasks x methods, which (task, method) pairs apply,
and the rows to run (resume skips rows already recorded).

A row is one (image, task, method). Its ``id`` hashes everything that changes its result
(seed, image URI, crop, the task's degradation spec and the method's effective spec), so
changing one method re-runs only that method's rows. ``image_id`` (a hash of the URI) seeds
the degradation: every method sees the same y for an (image, task).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Literal

from pipelines.config import ConfigError

PIXEL_ONLY = ("dps", "ddnm", "diffpir", "pnp_ula")  # solvers that call require_pixel
BLIND_TASKS = ("blind", "realesrgan")  # the tasks blind solvers are run on in the grid
PRIOR_SPACE = {"embedded": "pixel", "gaussian": "pixel", "dncnn": "pixel", "ffdnet": "pixel",
               "embedded_latent": "latent"}


@dataclass(frozen=True)
class DatasetConfig:
    """Images under ``input`` (any URI), sorted by path; the first ``limit``; centre-cropped
    to ``crop`` x ``crop`` (null: whole images)."""

    name: str
    input: str
    crop: int | None = None
    limit: int | None = None


@dataclass(frozen=True)
class TaskConfig:
    """A degradation spec (``{name: blur, ...}``), the measurement model of this task."""

    name: str
    degradation: dict


@dataclass(frozen=True)
class MethodConfig:
    """``kind: solver``: ``solver`` ({name, ...solver config}), ``prior`` ({name, ...}), ``nfe``.
    ``kind: baseline``: ``baseline`` ({name, ...baseline config}).
    ``task_config``: {task name: config keys} overriding the solver/baseline config on that task.
    ``tasks``: run only on these tasks (null: every task the method applies to).
    ``limit``: run only on the first ``limit`` images of each dataset (an expensive reference
    measured on a subset; null: every image). Ids do not hash it: raising it later runs only
    the new images.
    ``space``: the prior's space, needed only for a ``diffusers`` prior whose VAE is implied.
    ``assume``: a degradation spec the solver is told instead of the task's (a wrong operator on
    purpose, e.g. plain bicubic x4 on Real-ESRGAN-degraded inputs; null: the task's own)."""

    name: str
    kind: Literal["solver", "baseline"]
    solver: dict | None = None
    prior: dict | None = None
    nfe: int | None = None
    baseline: dict | None = None
    task_config: dict = field(default_factory=dict)
    tasks: list[str] | None = None
    space: Literal["pixel", "latent"] | None = None
    assume: dict | None = None
    limit: int | None = None

    def effective(self, task: str, degradation: dict | None = None) -> dict:
        """The JSON-able spec this method runs with on ``task`` (task overrides applied); given
        the task's ``degradation``, the solver's preset values for it are written out too
        (pipelines.spec_defaults.resolve_solver)."""
        over = dict(self.task_config.get(task) or {})
        if self.kind == "baseline":
            return {"kind": "baseline", "baseline": {**self.baseline, **over}}
        solver = {**self.solver, **over}
        if degradation is not None:
            from pipelines.spec_defaults import resolve_solver

            solver = resolve_solver(solver, self.assume or degradation, with_nfe=False)
        spec = {"kind": "solver", "solver": solver, "prior": dict(self.prior), "nfe": self.nfe}
        return {**spec, "assume": dict(self.assume)} if self.assume else spec  # ids unchanged without it

    def resolved(self) -> MethodConfig:
        """A solver method's solver and prior written out to their full defaults (its preset
        values, which depend on the task, are left to ``effective``)."""
        if self.kind != "solver" or self.solver is None or self.prior is None:
            return self
        from pipelines.spec_defaults import resolve_prior, resolve_solver

        return replace(self, solver=resolve_solver(self.solver, None, with_nfe=False), prior=resolve_prior(self.prior))

    def prior_space(self) -> str | None:
        if self.space or self.kind != "solver":
            return self.space
        name = self.prior.get("name")
        if name == "diffusers" and self.prior.get("vae") is not None:
            return "latent" if self.prior["vae"] else "pixel"
        return PRIOR_SPACE.get(name)

    def validate(self, key: str, task_names: list[str]) -> None:
        from pipelines.prior_files import check_prior_files
        from pipelines.registry_check import check_prior, check_solver

        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise ConfigError(f"config key '{key}.limit': expected a positive integer or null, got {self.limit!r}")
        unknown = sorted((set(self.task_config) | set(self.tasks or [])) - set(task_names))
        if unknown:
            raise ConfigError(f"config key '{key}': unknown task {unknown[0]!r}; tasks: {', '.join(task_names)}")
        if self.kind == "baseline":
            if self.baseline is None or self.solver or self.prior or self.nfe is not None:
                raise ConfigError(f"config key '{key}': a baseline takes 'baseline' only (no solver, prior, nfe)")
            for task in task_names:
                check_baseline(self.effective(task)["baseline"], f"{key}.baseline")
            return
        if self.solver is None or self.prior is None or self.baseline is not None:
            raise ConfigError(f"config key '{key}': a solver method needs 'solver' and 'prior' (no 'baseline')")
        if "nfe" in self.solver:
            raise ConfigError(f"config key '{key}.solver.nfe': give the NFE as '{key}.nfe'")
        if isinstance(self.nfe, bool) or not isinstance(self.nfe, int) or self.nfe < 1:
            raise ConfigError(f"config key '{key}.nfe': expected a positive integer, got {self.nfe!r}")
        if self.assume is not None:
            from pipelines.registry_check import check_degradation

            check_degradation(self.assume, f"{key}.assume")
        check_prior(self.prior, f"{key}.prior")
        check_prior_files(self.prior, f"{key}.prior", require=False)  # a missing file: that method's rows fail
        for task in task_names:
            check_solver({**self.effective(task)["solver"], "nfe": self.nfe}, f"{key}.solver")
        if self.prior_space() is None:
            raise ConfigError(f"config key '{key}.space': say whether prior {self.prior['name']!r} is "
                              f"pixel or latent; valid choices: 'pixel' | 'latent'")


def check_baseline(spec: dict, key: str) -> None:
    from operators.baselines import BASELINES, baseline_config
    from pipelines.registry_check import _name

    name = _name(spec, key, BASELINES.names())
    try:
        baseline_config(name, **{k: v for k, v in spec.items() if k != "name"})
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config key '{key}': {e}") from None


def _estimator_skip(name: str, op) -> str | None:
    """Why the learned estimator ``name`` does not apply to ``op`` (None: it does)."""
    from operators.estimators import Estimator

    try:
        Estimator(name, "").check(op)
    except ValueError as e:
        return str(e)
    return None


def skip_reason(method: MethodConfig, task: TaskConfig) -> str | None:
    """Why ``method`` does not apply to ``task`` (None: it applies). Mirrors the solvers' own
    checks (a closed-form pinv/prox/adjoint, pixel-space priors) so inapplicable pairs are
    skipped, not run into errors."""
    from operators.degradations import build_degradation

    if method.tasks is not None and task.name not in method.tasks:
        return "not in the method's tasks"
    op = build_degradation(dict(method.assume or task.degradation))
    spec = method.effective(task.name)
    if method.kind == "baseline":
        from operators.baselines import APPLIES
        from operators.estimators import ESTIMATORS

        name = spec["baseline"]["name"]
        if op.name not in APPLIES[name]:
            return f"baseline {name!r} applies to {', '.join(APPLIES[name])}"
        return _estimator_skip(name, op) if name in ESTIMATORS else None
    from operators.estimators import split_init
    from operators.solvers import common, row_config
    from operators.solvers.posterior import split_posterior

    name = spec["solver"]["name"]
    from operators.solvers import BLIND_SOLVERS

    if name in BLIND_SOLVERS and op.name not in BLIND_TASKS:
        return f"blind solver {name!r} restores unknown degradations ({', '.join(BLIND_TASKS)} tasks)"
    init, options = split_init(split_posterior({k: v for k, v in spec["solver"].items() if k != "name"})[1])
    if init is not None and (why := _estimator_skip(init["name"], op)):
        return why
    cfg = row_config(name, options, op)[0]
    try:
        if name in PIXEL_ONLY and method.prior_space() != "pixel":
            raise ValueError(f"solver {name!r} needs a pixel-space prior")
        if name == "ddnm":
            from operators.solvers.ddnm import range_correction

            if range_correction(op, None) is None:
                common.require(op, "pinv", name)
        elif name == "pnp_ula":
            common.require(op, "adjoint", name)
        elif name in ("diffpir", "langevin", "reld"):
            common.check_prox(op, name, cfg.inexact_prox_steps)
        elif name == "latent_dps" and cfg.gamma > 0:
            common.require(op, "adjoint", name)
    except ValueError as e:
        return str(e)
    return None


def local_paths(spec: dict) -> dict:
    """A degradation spec with a relative local ``kernel_file`` made absolute (Ray workers
    may not share the driver's working directory)."""
    f = spec.get("kernel_file")
    if isinstance(f, str) and "://" not in f and not os.path.isabs(f):
        return {**spec, "kernel_file": os.path.abspath(f)}
    return dict(spec)


def grid_row_id(seed: int, source_uri: str, crop: int | None, mod: int, degradation: dict, method: dict,
                weights: dict | None = None) -> str:
    """Stable id of a grid row; ``weights`` ({file: digest} of the method's prior and solver files,
    when it has some) makes retrained weights new rows."""
    from operators.seeding import derive_seed  # torch: not at import (`restoray --help` imports this)

    parts = (json.dumps(degradation, sort_keys=True), json.dumps(method, sort_keys=True))
    if weights:
        parts += (json.dumps(weights, sort_keys=True),)
    return f"{derive_seed(seed, source_uri, crop, mod, *parts):016x}"


def plan_grid(datasets, tasks, methods, seed: int, mod: int, output: str, storage) -> tuple[list[dict], list[dict]]:
    """(all grid rows in order: dataset, image, task, method; the skipped (task, method) pairs
    with their reasons). Rows are not filtered for resume here."""
    from pipelines.inputs import resolve_input
    from pipelines.prior_files import weights_digest
    from pipelines.storage import list_inputs
    from pipelines.tables import image_id

    skipped, pairs = [], []
    for t in tasks:
        for m in methods:
            reason = skip_reason(m, t)
            if reason:
                skipped.append({"task": t.name, "method": m.name, "reason": reason})
            else:
                pairs.append((t, m))
    rows = []
    for d in datasets:
        files = list_inputs(resolve_input(d.input, output), storage)[: d.limit]
        for index, f in enumerate(files):
            for t, m in pairs:
                if m.limit is not None and index >= m.limit:
                    continue
                spec = m.effective(t.name, t.degradation)
                weights = weights_digest(spec["prior"], spec["solver"]) if spec["kind"] == "solver" else None
                rows.append({"id": grid_row_id(seed, f.uri, d.crop, mod, t.degradation, spec, weights),
                             "image_id": image_id(f.uri), "dataset": d.name, "source_uri": f.uri,
                             "relative_path": f.relative_path, "crop": -1 if d.crop is None else int(d.crop),
                             "task": t.name,
                             "task_spec": json.dumps(local_paths(t.degradation), sort_keys=True), "method": m.name,
                             "method_spec": json.dumps(spec, sort_keys=True)})
    return rows, skipped
