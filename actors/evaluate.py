"""EvaluateActor: runs one grid row (an image, a task, a method) and scores it.

Holds every prior the grid's solver methods use, each loaded once per actor on first use
(a method switch never reloads a model); baselines need no state.
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from actors.columns import batch_to_rows, error_fields, rows_to_batch, unpack
from actors.runtime import hwc_to_nchw, nchw_to_hwc, setup_device, timed_solve
from operators.baselines import baseline_config, get_baseline
from operators.degradations import build_degradation
from operators.media import encode_png
from operators.metrics.quality import quality
from operators.priors import Prior, build_prior
from operators.solvers import get_solver, solver_config

PIXEL_COLUMNS = ("lq", "hq")


class EvaluateActor:
    """Callable class for ``map_batches``: rows with ``lq``, ``hq``, ``degradation`` and
    ``method_spec`` in; psnr, ssim (and of the LQ input), nfe, nfe_backward, seconds out.

    Pixel columns are dropped; rows of ``comparison_images`` keep PNGs of the restored image
    (and of LQ / reference) for the comparison grids. A row whose restoration fails becomes
    an error row (stage "restore"); rows that arrive with an error pass through.
    """

    def __init__(self, seed: int, device: str = "auto", torch_threads: int | None = None,
                 comparison_images: tuple[str, ...] = ()):
        self.device = setup_device(device, torch_threads)
        self.seed = seed
        self.comparison_images = set(comparison_images)
        self.priors: dict[str, Prior] = {}

    def prior(self, spec: dict) -> Prior:
        key = json.dumps(spec, sort_keys=True)
        if key not in self.priors:
            self.priors[key] = build_prior(spec, device=str(self.device))
        return self.priors[key]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch([self.evaluate_row(r) for r in batch_to_rows(batch)])

    def restore(self, row: dict, spec: dict, y: torch.Tensor) -> tuple[torch.Tensor, int, int, float]:
        """(x (1, C, H, W), nfe, nfe_backward, seconds) for one row."""
        op = build_degradation(json.loads(str(row["degradation"])))
        if spec["kind"] == "baseline":
            options = dict(spec["baseline"])
            name = options.pop("name")
            fn, cfg = get_baseline(name), baseline_config(name, **options)
            t0 = time.perf_counter()
            x = fn(y, op, config=cfg)
            return x, 0, 0, time.perf_counter() - t0
        options = dict(spec["solver"])
        name = options.pop("name")
        prior = self.prior(spec["prior"])
        return timed_solve(get_solver(name), y, op, prior, int(spec["nfe"]), solver_config(name, **options),
                           self.seed, str(row["id"]))

    def evaluate_row(self, row: dict) -> dict:
        out = {k: v for k, v in row.items() if k not in PIXEL_COLUMNS}
        out.update({"psnr": np.nan, "ssim": np.nan, "lq_psnr": np.nan, "lq_ssim": np.nan, "nfe": 0,
                    "nfe_backward": 0, "seconds": np.nan, "restored_png": b"", "lq_png": b"", "hq_png": b""})
        if row.get("error_stage"):
            return out
        try:
            lq, hq = unpack(row["lq"]), unpack(row["hq"])
            y = hwc_to_nchw(lq, self.device)
            spec = json.loads(str(row["method_spec"]))
            x, out["nfe"], out["nfe_backward"], out["seconds"] = self.restore(row, spec, y)
            restored = nchw_to_hwc(x)
            out["psnr"], out["ssim"] = quality(restored, hq)
            out["lq_psnr"], out["lq_ssim"] = quality(np.clip(lq, 0, 1), hq)
            if str(row["image_id"]) in self.comparison_images:
                out.update(restored_png=encode_png(restored), lq_png=encode_png(lq), hq_png=encode_png(hq))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields("restore", exc))
        return out
