"""RestoreActor: holds one prior (loaded once per actor) and runs a solver on each row."""
from __future__ import annotations

import json

import numpy as np

from actors.batching import RowSolve, check_solve_batch, solve_rows
from actors.columns import batch_to_rows, error_fields, pack, rows_to_batch, unpack
from actors.runtime import hwc_to_nchw, nchw_to_hwc, setup_device
from operators.degradations import build_degradation
from operators.degradations.estimated import with_estimate
from operators.estimators import build_estimator, split_init
from operators.priors import build_prior
from operators.solvers import get_solver, row_config, with_run_defaults
from operators.solvers.posterior import check_posterior, split_posterior


class RestoreActor:
    """Callable class for ``map_batches``: rows with ``lq`` and ``degradation`` in; ``restored``,
    ``std`` (the posterior std, b"" when none), ``samples`` and ``estimate`` out.

    solver: {name, nfe, samples, estimate, preset, init, ...solver config keys}, the config resolved
    per row against its degradation's preset (``preset`` / ``solver_config`` out); prior: {name, ...}. Rows that
    already carry an error pass through untouched; a row whose solve fails becomes an error row
    (stage "restore"). ``solve_batch``: at most this many rows of one call share a solve
    (see :meth:`restore_rows`).
    """

    def __init__(self, solver: dict, prior: dict, seed: int, device: str = "auto",
                 torch_threads: int | None = None, solve_batch: int = 1):
        self.device = setup_device(device, torch_threads)
        spec = with_run_defaults(dict(solver))
        self.solver_name = spec.pop("name")
        self.nfe = int(spec.pop("nfe"))
        self.solve = get_solver(self.solver_name)
        self.posterior, spec = split_posterior(spec)
        check_posterior(self.solver_name, self.posterior)
        init, spec = split_init(spec)
        self.estimator = build_estimator(init, str(self.device))
        self.spec = spec  # solver config keys (and preset); resolved per row by its degradation
        row_config(self.solver_name, spec, None)  # bad keys fail here, not on every row
        self.prior_spec = dict(prior)
        self.prior = build_prior(self.prior_spec, device=str(self.device))
        self.seed = seed
        self.solve_batch = check_solve_batch(solve_batch)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch(self.restore_rows(batch_to_rows(batch)))

    def restore_row(self, row: dict) -> dict:
        return self.restore_rows([row])[0]

    def restore_rows(self, rows: list[dict]) -> list[dict]:
        """The output rows; rows of equal lq shape, degradation and resolved solver config are
        solved up to ``solve_batch`` at a time (actors.batching: a row's restored image does
        not depend on its batch; its ``seconds`` is the batch's time divided evenly)."""
        outs, tasks = [], []
        for row in rows:
            out = {**row, "restored": b"", "seconds": float("nan"), "nfe": 0, "nfe_backward": 0,
                   "solver": self.solver_name, "prior": self.prior_spec.get("name", ""), "std": b"",
                   "samples": self.posterior.samples, "estimate": self.posterior.kind,
                   "preset": "", "solver_config": ""}
            outs.append(out)
            tasks.append(None)
            if row.get("error_stage"):
                continue
            try:
                tasks[-1] = self.prepare(row, out)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
                out.update(error_fields("restore", exc))
        for out, solved in zip(outs, solve_rows(tasks, self.seed, self.solve_batch), strict=True):
            try:
                if isinstance(solved, Exception):
                    raise solved
                if solved is not None:
                    result, out["seconds"] = solved
                    out["nfe"], out["nfe_backward"] = result.nfe, result.nfe_backward
                    out["restored"] = pack(nchw_to_hwc(result.x))
                    out["std"] = b"" if result.std is None else pack(nchw_to_hwc(result.std))
            except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
                out.update(error_fields("restore", exc))
        return outs

    def prepare(self, row: dict, out: dict) -> RowSolve:
        """The row's solve (its preset and config recorded in ``out``)."""
        y = hwc_to_nchw(unpack(row["lq"]), self.device)
        spec = json.loads(str(row["degradation"]))
        op = with_estimate(build_degradation(spec), self.estimator)  # init: a learned start
        config, out["preset"] = row_config(self.solver_name, self.spec, op)
        out["solver_config"] = json.dumps(config.to_dict(), sort_keys=True)
        return RowSolve(str(row["id"]), y, op, json.dumps(spec, sort_keys=True), self.solver_name, self.solve,
                        self.prior, self.nfe, config, self.posterior)
