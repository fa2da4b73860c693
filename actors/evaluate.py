"""EvaluateActor: runs one grid row (an image, a task, a method) and scores it.

Holds every prior the grid's solver methods use, each loaded once per actor on first use
(a method switch never reloads a model); baselines need no state.
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from actors.batching import RowSolve, check_solve_batch, solve_rows
from actors.columns import batch_to_rows, error_fields, rows_to_batch, unpack
from actors.runtime import hwc_to_nchw, nchw_to_hwc, setup_device
from operators.baselines import baseline_config, get_baseline
from operators.comparison import std_display
from operators.degradations import build_degradation
from operators.degradations.estimated import with_estimate
from operators.estimators import build_estimator, split_init
from operators.media import encode_png
from operators.metrics.quality import quality
from operators.priors import Prior, build_prior
from operators.solvers import SolverOutput, get_solver, row_config
from operators.solvers.posterior import PosteriorConfig, check_posterior, split_posterior

PIXEL_COLUMNS = ("lq", "hq")


class EvaluateActor:
    """Callable class for ``map_batches``: rows with ``lq``, ``hq``, ``degradation`` and
    ``method_spec`` in; psnr, ssim (and of the LQ input), nfe, nfe_backward, seconds, samples,
    estimate and std_mean (the mean posterior std; NaN when none) out.

    Pixel columns are dropped; rows of ``comparison_images`` keep PNGs of the restored image
    (and of LQ / reference, and the posterior std as shown by operators.comparison) for the
    comparison grids. A row whose restoration fails becomes
    an error row (stage "restore"); rows that arrive with an error pass through.
    ``solve_batch``: at most this many rows of one call share a solve (:meth:`evaluate_rows`).
    """

    def __init__(self, seed: int, device: str = "auto", torch_threads: int | None = None,
                 comparison_images: tuple[str, ...] = (), solve_batch: int = 1):
        self.device = setup_device(device, torch_threads)
        self.seed = seed
        self.comparison_images = set(comparison_images)
        self.priors: dict[str, Prior] = {}
        self.solve_batch = check_solve_batch(solve_batch)

    def prior(self, spec: dict) -> Prior:
        key = json.dumps(spec, sort_keys=True)
        if key not in self.priors:
            self.priors[key] = build_prior(spec, device=str(self.device))
        return self.priors[key]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch(self.evaluate_rows(batch_to_rows(batch)))

    def evaluate_row(self, row: dict) -> dict:
        return self.evaluate_rows([row])[0]

    def evaluate_rows(self, rows: list[dict]) -> list[dict]:
        """The output rows; solver rows of equal lq shape, degradation, method spec and resolved
        config share a solve, up to ``solve_batch`` rows (actors.batching: results do not depend
        on the batch; ``seconds`` is the batch's time divided evenly). Baselines run row by row."""
        outs = [self.blank(row) for row in rows]
        tasks: list[RowSolve | None] = [None] * len(rows)
        solved: dict[int, tuple[SolverOutput, PosteriorConfig, float] | Exception] = {}
        for i, row in enumerate(rows):
            if row.get("error_stage"):
                continue
            try:
                y = hwc_to_nchw(unpack(row["lq"]), self.device)
                spec = json.loads(str(row["method_spec"]))
                if spec["kind"] == "baseline":
                    solved[i] = self.baseline(row, spec, y)
                else:
                    tasks[i] = self.prepare(row, spec, y)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
                solved[i] = exc
        for i, result in enumerate(solve_rows(tasks, self.seed, self.solve_batch)):
            if result is not None:
                solved[i] = result if isinstance(result, Exception) else (result[0], tasks[i].posterior, result[1])
        for i, result in sorted(solved.items()):
            try:
                if isinstance(result, Exception):
                    outs[i].update(error_fields("restore", result))
                else:
                    self.score(rows[i], outs[i], *result)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
                outs[i].update(error_fields("restore", exc))
        return outs

    def blank(self, row: dict) -> dict:
        out = {k: v for k, v in row.items() if k not in PIXEL_COLUMNS}
        out.update({"psnr": np.nan, "ssim": np.nan, "lq_psnr": np.nan, "lq_ssim": np.nan, "nfe": 0,
                    "nfe_backward": 0, "seconds": np.nan, "samples": 1, "estimate": "single", "std_mean": np.nan,
                    "restored_png": b"", "lq_png": b"", "hq_png": b"", "std_png": b""})
        return out

    def baseline(self, row: dict, spec: dict, y: torch.Tensor) -> tuple[SolverOutput, PosteriorConfig, float]:
        """(the baseline's output x (1, C, H, W); no posterior; seconds)."""
        op = build_degradation(json.loads(str(row["degradation"])))
        options = dict(spec["baseline"])
        name = options.pop("name")
        fn, cfg = get_baseline(name), baseline_config(name, **options)
        t0 = time.perf_counter()
        x = fn(y, op, config=cfg)
        return SolverOutput(x=x, nfe=0), PosteriorConfig(), time.perf_counter() - t0

    def prepare(self, row: dict, spec: dict, y: torch.Tensor) -> RowSolve:
        """The solve of a solver method's row (its prior loaded on first use)."""
        deg = spec.get("assume") or json.loads(str(row["degradation"]))  # the operator the solver is told
        options = dict(spec["solver"])
        name = options.pop("name")
        posterior, options = split_posterior(options)
        check_posterior(name, posterior)
        init, options = split_init(options)
        op = with_estimate(build_degradation(deg), build_estimator(init, str(self.device)))
        return RowSolve(str(row["id"]), y, op, json.dumps(deg, sort_keys=True), name, get_solver(name),
                        self.prior(spec["prior"]), int(spec["nfe"]), row_config(name, options, op)[0], posterior,
                        method=json.dumps(spec, sort_keys=True))

    def score(self, row: dict, out: dict, result: SolverOutput, posterior: PosteriorConfig, seconds: float) -> None:
        """Fill ``out`` with the row's metrics (and comparison PNGs) from its restored image."""
        lq, hq = unpack(row["lq"]), unpack(row["hq"])
        out.update(nfe=int(result.nfe), nfe_backward=int(result.nfe_backward), samples=posterior.samples,
                   estimate=posterior.kind, seconds=seconds)
        restored = nchw_to_hwc(result.x)
        std = None if result.std is None else nchw_to_hwc(result.std)
        if std is not None:
            out["std_mean"] = float(std.mean())
        out["psnr"], out["ssim"] = quality(restored, hq)
        out["lq_psnr"], out["lq_ssim"] = quality(np.clip(lq, 0, 1), hq)
        if str(row["image_id"]) in self.comparison_images:
            out.update(restored_png=encode_png(restored), lq_png=encode_png(lq), hq_png=encode_png(hq),
                       std_png=b"" if std is None else encode_png(std_display(std), grey=True))
