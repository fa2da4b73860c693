"""RestoreActor: holds one prior (loaded once per actor) and runs a solver on each row."""
from __future__ import annotations

import json

import numpy as np

from actors.columns import batch_to_rows, error_fields, pack, rows_to_batch, unpack
from actors.runtime import hwc_to_nchw, nchw_to_hwc, setup_device, timed_solve
from operators.degradations import build_degradation
from operators.priors import build_prior
from operators.solvers import get_solver, row_config
from operators.solvers.posterior import check_posterior, split_posterior


class RestoreActor:
    """Callable class for ``map_batches``: rows with ``lq`` and ``degradation`` in; ``restored``,
    ``std`` (the posterior std, b"" when none), ``samples`` and ``estimate`` out.

    solver: {name, nfe, samples, estimate, preset, ...solver config keys}, the config resolved
    per row against its degradation's preset (``preset`` / ``solver_config`` out); prior: {name, ...}. Rows that
    already carry an error pass through untouched; a row whose solve fails becomes an error row
    (stage "restore").
    """

    def __init__(self, solver: dict, prior: dict, seed: int, device: str = "auto",
                 torch_threads: int | None = None):
        self.device = setup_device(device, torch_threads)
        spec = dict(solver)
        self.solver_name = spec.pop("name")
        self.nfe = int(spec.pop("nfe", 20))
        self.solve = get_solver(self.solver_name)
        self.posterior, spec = split_posterior(spec)
        check_posterior(self.solver_name, self.posterior)
        self.spec = spec  # solver config keys (and preset); resolved per row by its degradation
        row_config(self.solver_name, spec, None)  # bad keys fail here, not on every row
        self.prior_spec = dict(prior)
        self.prior = build_prior(self.prior_spec, device=str(self.device))
        self.seed = seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch([self.restore_row(r) for r in batch_to_rows(batch)])

    def restore_row(self, row: dict) -> dict:
        out = {**row, "restored": b"", "seconds": float("nan"), "nfe": 0, "nfe_backward": 0,
               "solver": self.solver_name, "prior": self.prior_spec.get("name", ""), "std": b"",
               "samples": self.posterior.samples, "estimate": self.posterior.kind,
               "preset": "", "solver_config": ""}
        if row.get("error_stage"):
            return out
        try:
            y = hwc_to_nchw(unpack(row["lq"]), self.device)
            op = build_degradation(json.loads(str(row["degradation"])))
            config, out["preset"] = row_config(self.solver_name, self.spec, op)
            out["solver_config"] = json.dumps(config.to_dict(), sort_keys=True)
            result, out["seconds"] = timed_solve(self.solve, y, op, self.prior, self.nfe, config,
                                                 self.seed, str(row["id"]), self.posterior)
            out["nfe"], out["nfe_backward"] = result.nfe, result.nfe_backward
            out["restored"] = pack(nchw_to_hwc(result.x))
            out["std"] = b"" if result.std is None else pack(nchw_to_hwc(result.std))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields("restore", exc))
        return out
