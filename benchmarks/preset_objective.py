"""The objective the preset sweep maximises: mean PSNR of one solver config on one task over
fixed BSDS400 *training* crops (never the evaluation sets). Shared by tune_presets.py (Ray
Tune) and by hand probes:

    python benchmarks/preset_objective.py diffpir denoise --nfe 20 --set lam=7 --set zeta=0
"""
from __future__ import annotations

import argparse
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO.parent / "shared" / "data" / "train" / "BSDS400_color"
EVAL_CONFIG = REPO / "configs" / "evaluate.yaml"


# Tasks beyond the evaluate grid's, so a family's preset is not fitted to one noise level:
# the quickstart's noisy x2 SR next to the grid's x4 SR at noise 0.01.
EXTRA_TASKS = [{"name": "sr_x2_noisy", "degradation": {"name": "sr", "scale": 2, "noise_sigma": 0.05}},
               {"name": "sr_x4_noisy", "degradation": {"name": "sr", "scale": 4, "noise_sigma": 0.03}}]


def tasks() -> dict[str, dict]:
    """Task name -> degradation spec, the same tasks as configs/evaluate.yaml."""
    cfg = yaml.safe_load(EVAL_CONFIG.read_text())
    out = {}
    for t in cfg["tasks"] + EXTRA_TASKS:  # file paths are relative to the repo: Tune runs trials elsewhere
        spec = dict(t["degradation"])
        if spec.get("kernel_file"):
            spec["kernel_file"] = str((REPO / spec["kernel_file"]).resolve())
        out[t["name"]] = spec
    return out


def training_crops(n: int = 4, size: int = 128, offset: int = 7) -> list[np.ndarray]:
    """n centre crops (H, W, 3) float32 of BSDS400 training images, every 37th file from ``offset``."""
    files = sorted(TRAIN.glob("*.jpg"))
    out = []
    for f in files[offset::37][:n]:
        a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255
        h, w = a.shape[:2]
        t, l = (h - size) // 2, (w - size) // 2
        out.append(np.ascontiguousarray(a[t:t + size, l:l + size]))
    return out


@lru_cache(maxsize=4)
def _prior(spec_json: str):
    import json

    from operators.priors import build_prior

    return build_prior(json.loads(spec_json))


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.clip(x, 0, 1).astype(np.float64) - ref) ** 2))
    return 10 * math.log10(1 / max(mse, 1e-12))


def degrade(task_spec: dict, crop: np.ndarray, index: int) -> tuple[object, torch.Tensor]:
    """(bound operator, y (1, C, h, w)) for one crop, drawn from a generator seeded by index."""
    from operators.degradations import build_degradation
    from operators.seeding import make_generator

    x = torch.from_numpy(crop.transpose(2, 0, 1))[None]
    gen = make_generator(0, "preset-sweep", index)
    op = build_degradation(task_spec).bind(tuple(x.shape), gen)
    return op, op.measure(x, gen)


def score(solver: str, task: str, keys: dict, nfe: int, prior: dict | None = None,
          crops: list[np.ndarray] | None = None, init: dict | None = None) -> dict[str, float]:
    """{"psnr": mean restored PSNR, "input_psnr": mean PSNR of init_estimate(y)} over crops;
    ``init``: a learned initial estimator (a solver's ``init:`` key; operators.estimators)."""
    import json

    from operators.degradations.estimated import with_estimate
    from operators.estimators import build_estimator
    from operators.solvers import get_solver, solver_config
    from operators.solvers.presets import resolve_spec
    from operators.seeding import make_generator

    crops = crops if crops is not None else training_crops()
    prior_obj = _prior(json.dumps(prior or {"name": "embedded"}, sort_keys=True))
    spec = tasks()[task]
    estimator = build_estimator(init)
    got, base = [], []
    for i, crop in enumerate(crops):
        op, y = degrade(spec, crop, i)
        op = with_estimate(op, estimator)
        cfg_keys, _ = resolve_spec(solver, {"preset": "none", **keys}, op)
        cfg = solver_config(solver, **cfg_keys)
        with torch.no_grad():
            out = get_solver(solver)(y, op, prior_obj, nfe=nfe, generator=make_generator(0, "solve", i), config=cfg)
        x = out.x[0].permute(1, 2, 0).numpy()
        got.append(psnr(x, crop))
        base.append(psnr(op.init_estimate(y)[0].permute(1, 2, 0).numpy(), crop))
    return {"psnr": float(np.mean(got)), "input_psnr": float(np.mean(base))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("solver")
    ap.add_argument("task", choices=sorted(tasks()))
    ap.add_argument("--nfe", type=int, default=20)
    ap.add_argument("--prior", default="embedded")
    ap.add_argument("--set", action="append", default=[], help="key=value (YAML value)")
    ap.add_argument("--init", default=None, help="a learned initial estimator (imdn)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keys = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    init = {"name": args.init} if args.init else None
    print(score(args.solver, args.task, keys, args.nfe, {"name": args.prior}, init=init))


if __name__ == "__main__":
    main()
