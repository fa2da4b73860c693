"""VideoRestoreActor: holds the priors (loaded once per actor) and restores one segment per row,
window by window.

Methods (``solver.name``):
- ``langevin_video``: windows of W frames overlapping by O restored jointly, each anchored to
  the frames the previous window of its shot restored (operators.solvers.langevin_video),
  with ``video_prior`` as the temporal expert when given;
- any other image solver, or a classical baseline (bm3d, tv, ...): frame by frame (the
  baseline the coupling must beat), frames batched W at a time;
- ``dvdnet``: the video denoiser alone (``video_prior`` gives its weights), sigma = the
  degradation's noise level.
Windows never cross a scene cut (operators.video.cuts). Every random draw comes from a generator
seeded by (job seed, clip id, the window's first frame).
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from actors.columns import batch_to_rows, error_fields, pack, rows_to_batch, unpack
from actors.runtime import release_freed_memory, setup_device
from operators.baselines import BASELINES, baseline_config
from operators.degradations import build_degradation
from operators.degradations.estimated import with_estimate
from operators.estimators import build_estimator, split_init
from operators.priors import build_prior
from operators.seeding import make_generator
from operators.solvers import get_solver, row_config
from operators.video.cuts import DEFAULT_THRESHOLD, detect_cuts
from operators.video.windows import Window, blend_windows, plan_windows

WINDOWED = "langevin_video"
VIDEO_DENOISER = "dvdnet"


def load_video_prior(spec: dict | None, device: str):
    """The video expert / denoiser of ``spec`` ({name: dvdnet, weights: FOLDER}), or None."""
    if not spec:
        return None
    from operators.priors.dvdnet import load_dvdnet

    if spec.get("name") != "dvdnet" or "weights" not in spec:
        raise ValueError(f"video_prior must be {{name: dvdnet, weights: FOLDER[, flow: deepflow|dis]}}, got {spec!r}")
    return load_dvdnet(spec["weights"], flow=spec.get("flow", "deepflow"), device=device)


class VideoRestoreActor:
    """Callable class for ``map_batches``: segment rows with ``lq`` in; ``restored`` (uint8
    frames), ``windows`` (JSON list; a window's ``nfe``: network passes each of its frames got),
    ``cuts``, ``nfe`` (passes summed over the segment's frames: a window of W frames at K NFE
    adds W K; frames two windows share count twice), ``seconds``, ``solver_config`` out."""

    def __init__(self, solver: dict, prior: dict, video_prior: dict | None, seed: int, device: str = "auto",
                 torch_threads: int | None = None, cut_threshold: float = DEFAULT_THRESHOLD):
        self.device = setup_device(device, torch_threads)
        spec = dict(solver)
        self.name = spec.pop("name")
        self.nfe = int(spec.pop("nfe", 4))
        self.window = int(spec.get("window", 8))
        self.overlap = int(spec.get("overlap", 2 if self.name == WINDOWED else 0))
        if self.name != WINDOWED:
            spec.pop("window", None), spec.pop("overlap", None)
        init, spec = split_init(spec)  # a learned start (operators.estimators), solvers only
        self.estimator = build_estimator(init, str(self.device))
        if init is not None and (self.name == VIDEO_DENOISER or self.name in BASELINES.names()):
            raise ValueError(f"solver.init applies to diffusion solvers, not to {self.name!r}")
        self.spec, self.seed, self.cut_threshold = spec, seed, cut_threshold
        self.video_prior = load_video_prior(video_prior, str(self.device))
        if self.name == VIDEO_DENOISER:
            if self.video_prior is None:
                raise ValueError("solver 'dvdnet' needs video_prior: {name: dvdnet, weights: FOLDER}")
            self.prior, self.overlap = None, max(self.overlap, 2)
        elif self.name in BASELINES.names():
            self.prior = None
            baseline_config(self.name, **spec)  # bad keys fail here
        else:
            get_solver(self.name)
            row_config(self.name, spec, None)
            self.prior = build_prior(dict(prior), device=str(self.device))
        self.prior_name = "" if self.prior is None else str(prior.get("name", ""))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = rows_to_batch([self.restore_row(r) for r in batch_to_rows(batch)])
        release_freed_memory()  # a segment's frames: give the freed pages back (actors.runtime)
        return out

    def restore_row(self, row: dict) -> dict:
        out = {**row, "restored": b"", "windows": "[]", "cuts": "[]", "nfe": 0, "seconds": float("nan"),
               "solver": self.name, "prior": self.prior_name, "solver_config": ""}
        if row.get("error_stage"):
            return out
        try:
            lq = unpack(row["lq"]).astype(np.float32)
            op = build_degradation(json.loads(str(row["degradation"])))
            cuts = detect_cuts(lq, self.cut_threshold) if len(lq) > 1 else []
            windows = plan_windows(len(lq), self.window, self.overlap, cuts)
            t0 = time.perf_counter()
            results, records, previous = [], [], {}
            for w in windows:
                x, nfe, secs, config = self.restore_window(lq, w, op, row, previous)
                results.append(x)
                previous = {w.start + i: x[i] for i in range(len(x))}
                records.append({"start": int(row["context"]) + w.start, "stop": int(row["context"]) + w.stop,
                                "anchored": w.anchored, "shot": w.shot, "nfe": nfe, "seconds": secs})
            restored = blend_windows(len(lq), windows, results)
            frame_passes = sum(r["nfe"] * (r["stop"] - r["start"]) for r in records)
            out.update(seconds=time.perf_counter() - t0, nfe=int(frame_passes),
                       windows=json.dumps(records), cuts=json.dumps([int(row["context"]) + c for c in cuts]),
                       solver_config=config, restored=pack(np.clip(restored, 0, 1) * 255 + 0.5, np.uint8))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields("restore", exc))
        return out

    def restore_window(self, lq: np.ndarray, w: Window, op, row: dict,
                       previous: dict[int, np.ndarray]) -> tuple[np.ndarray, int, float, str]:
        """(restored frames (stop - start, H, W, 3), NFE, seconds, solver config JSON) of one window."""
        y = torch.from_numpy(np.ascontiguousarray(lq[w.start: w.stop].transpose(0, 3, 1, 2))).to(self.device)
        gen = make_generator(self.seed, str(row["clip_id"]), "solve", int(row["context"]) + w.start)
        t0 = time.perf_counter()
        with torch.no_grad():
            if self.name == VIDEO_DENOISER:
                sigma = min(max(float(op.init_sigma), self.video_prior.sigma_min), self.video_prior.sigma_max)
                x, nfe, config = self.video_prior.denoise_video(y, sigma), 1, {"sigma": sigma}
            elif self.name in BASELINES.names():
                cfg = baseline_config(self.name, **self.spec)
                x, nfe, config = BASELINES.get(self.name)(y, op, config=cfg), 0, cfg
            else:
                op = with_estimate(op, self.estimator)
                config, _ = row_config(self.name, self.spec, op)
                kwargs = {}
                if self.name == WINDOWED:
                    kwargs = {"anchor": self._anchor(y, w, previous), "video_prior": self.video_prior}
                result = get_solver(self.name)(y, op, self.prior, nfe=self.nfe, generator=gen, config=config,
                                               **kwargs)
                x, nfe = result.x, result.nfe
        secs = time.perf_counter() - t0
        text = json.dumps(config if isinstance(config, dict) else _as_dict(config), sort_keys=True)
        return x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy(), int(nfe), secs, text

    def _anchor(self, y: torch.Tensor, w: Window, previous: dict[int, np.ndarray]) -> torch.Tensor | None:
        """(T, C, H, W): the previous window's restoration on the ``anchored`` frames, NaN elsewhere."""
        if not w.anchored:
            return None
        shape = (y.shape[0], y.shape[2], y.shape[3], y.shape[1])
        a = np.full(shape, np.nan, dtype=np.float32)
        for i in range(w.anchored):
            a[i] = previous[w.start + i]
        return torch.from_numpy(a).permute(0, 3, 1, 2).to(y.device)


def _as_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else {}
