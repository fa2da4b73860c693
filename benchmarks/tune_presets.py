"""Choose the per-task solver presets with Ray Tune on BSDS400 training crops; write them to
configs/presets.yaml (and a log of every trial next to it in runs/).

    python benchmarks/tune_presets.py [--solvers langevin diffpir ddnm] [--tasks denoise sr_x4]
                                      [--samples 16] [--crops 4] [--size 128] [--init imdn] [--write]

One Tune experiment per (solver, task): random search (Tune's BasicVariantGenerator) over the
space below, objective = mean PSNR of benchmarks/preset_objective.score on the crops, one CPU
per trial. ``--init imdn`` tunes the ``refine`` family: the solvers started from a learned
estimator's output (operators.estimators). The winner of each is written under the task's family; ``--write`` merges them into
configs/presets.yaml (keys of other solvers/families are kept).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import yaml
from ray import tune

sys.path.insert(0, str(Path(__file__).resolve().parent))
import preset_objective as po  # noqa: E402

from operators.degradations import build_degradation  # noqa: E402
from operators.solvers.presets import task_family  # noqa: E402

PRESETS = po.REPO / "configs" / "presets.yaml"
NFE = {"langevin": 8, "diffpir": 20, "ddnm": 20, "dps": 50, "reld": 20, "latent_dps": 50, "pnp_ula": 200, "ud2m": 6}
PRIOR = {"reld": {"name": "embedded_latent"}, "latent_dps": {"name": "embedded_latent"}}


# Points every search evaluates besides its random ones (Tune's points_to_evaluate): for
# denoising, DiffPIR started at sigma_y with a strong prox weight and no fresh noise is a few
# PnP-HQS steps around the MMSE denoiser; 8 random trials missed it by 0.9 dB.
# Ending the schedule near sigma_y too (end_scale 0.8) keeps it at or above the denoiser alone.
_HQS = [{"start_scale": 1.0, "lam": 50.0, "zeta": 0.0, "end_scale": 0.8},
        {"start_scale": 1.0, "lam": 50.0, "zeta": 0.0, "end_scale": 0.05}]
# Motion deblurring from the Gaussian-deblur preset (what it ran with before it had its own) and
# from a hand probe's point (langevin: delta 1, sigma_min 0.01, +3.6 dB on Levin kernels 3 and 6).
_MOTION = {"langevin": [{"delta": 3.5469, "sigma_max": 0.1321, "sigma_min": 0.0262},
                        {"delta": 1.0, "sigma_max": 0.1321, "sigma_min": 0.01}],
           "diffpir": [{"lam": 0.7036, "sigma_max": 0.1073, "zeta": 0.702}]}
# Langevin on denoising: the shipped LATINO-style preset, and the same schedule without the fresh
# noise (renoise False: half-quadratic splitting, leaning to the MMSE) from a hand probe's step.
_LANGEVIN_DENOISE = [{"renoise": True, "delta": 0.7147, "start_scale": 1.6972, "end_scale": 0.0459},
                     {"renoise": False, "delta": 2.0, "start_scale": 1.6972, "end_scale": 0.0459}]
# JPEG: the shipped preset, and without fresh noise from half its start (a hand probe: +0.18 dB
# on the pixel prior, +0.43 on the latent one).
_LANGEVIN_JPEG = [{"renoise": True, "delta": 0.0643, "start_scale": 1.0127, "end_scale": 0.0304},
                  {"renoise": False, "delta": 0.0643, "start_scale": 0.5, "end_scale": 0.0304}]
# UD2M on JPEG: a hand probe's point, started at half the coding-error level (+0.86 dB over the
# unfolding's own schedule on the crops).
_UD2M_JPEG = [{"start_scale": 0.5, "end_scale": 0.5, "zeta": 0.9},
              {"start_scale": 0.7206, "end_scale": 0.0396, "zeta": 0.3135}]  # the 1,782-step unfolding's winner
# UD2M on its training family: the schedule it was trained on (no trial beat it; no preset); off
# it (random masks), the point the search has to beat.
_UD2M_OWN = [{"sigma_max": 0.4, "zeta": 0.9}]
SEEDS = {("diffpir", "denoise"): _HQS, ("diffpir", "jpeg_q10"): _HQS, ("langevin", "denoise"): _LANGEVIN_DENOISE,
         ("langevin", "jpeg_q10"): _LANGEVIN_JPEG, ("ud2m", "jpeg_q10"): _UD2M_JPEG,
         ("ud2m", "deblur_gauss"): _UD2M_OWN, ("ud2m", "sr_x4+sr_x2_noisy"): _UD2M_OWN,
         ("ud2m", "inpaint_random"): _UD2M_OWN, ("ud2m", "inpaint_box"): _UD2M_OWN,
         **{(solver, "deblur_motion"): points for solver, points in _MOTION.items()}}


def start_space(task: str, init: str | None = None) -> dict:
    """Where the schedule starts: the measurement's noise level (x start_scale) for denoising,
    a low level for restoration from a good initial estimate, up to generation for holes;
    around the estimator's error level when a learned estimator gives the start."""
    if init:
        return {"sigma_max": "measurement", "start_scale": tune.loguniform(0.25, 4.0)}
    if task == "denoise" or task.startswith("jpeg"):  # and where it ends, relative to sigma_y
        # (sigma_min: measurement); JPEG's y carries the coding error (JPEG.init_sigma, its
        # Gaussian-equivalent level), so it is searched like denoising
        return {"sigma_max": "measurement", "start_scale": tune.uniform(0.3 if task != "denoise" else 1.0, 2.0),
                "sigma_min": "measurement", "end_scale": tune.loguniform(0.02, 1.0)}
    hi = 80.0 if task == "inpaint_box" else 5.0
    return {"sigma_max": tune.loguniform(0.03, hi)}


def space(solver: str, task: str, init: str | None = None) -> dict:
    s = start_space(task, init)
    if solver == "diffpir":
        s |= {"lam": tune.loguniform(0.3, 100.0), "zeta": tune.uniform(0.0, 1.0)}
    elif solver == "langevin":
        s = {"sigma_min": tune.loguniform(0.002, 0.1)} | s | {"delta": tune.loguniform(0.01, 10.0)}
        if task == "denoise" or task.startswith("jpeg"):  # started from y: the MMSE-leaning variant too
            s["renoise"] = tune.choice([True, False])
    elif solver == "ddnm":
        s |= {"eta": tune.uniform(0.0, 1.0)}
    elif solver == "ud2m":  # the trained step scales stay; where the schedule runs and zeta
        s |= {"zeta": tune.uniform(0.0, 1.0)}
    elif solver in ("dps", "latent_dps"):
        s |= {"zeta": tune.loguniform(0.03, 3.0)}
    elif solver == "reld":
        s |= {"lam": tune.loguniform(0.1, 100.0)}
    elif solver == "pnp_ula":
        s = {"alpha": tune.uniform(0.3, 1.5), "sigma_den": tune.loguniform(2 / 255, 20 / 255)}
    return s


def as_keys(config: dict) -> dict:
    """A Tune sample -> solver spec keys (langevin's delta is a tuple of one step)."""
    keys = dict(config)
    if "delta" in keys:
        keys["delta"] = [round(float(keys["delta"]), 4)]
    return keys


def trial(config: dict, solver: str, task: str, crops: list, init: str | None = None) -> dict:
    """Mean PSNR on ``task``, or the average over "a+b" tasks (one preset for a family that
    must serve several noise levels or scales)."""
    import torch

    torch.set_num_threads(1)
    spec = {"name": init} if init else None
    scores = [po.score(solver, t, as_keys(config), NFE[solver], PRIOR.get(solver), crops, init=spec)
              for t in task.split("+")]
    return {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}


# (nfe, config) of the probe: a trained unfolding only loads on its own base prior, not on the
# probe's Gaussian one, and runs outer steps of K = 3.
PROBE = {"ud2m": (3, {"unfolding": "untrained"})}


def applicable(solver: str, task: str) -> bool:
    """Whether the solver runs on the task (the solver raises ValueError otherwise)."""
    import torch

    from operators.priors import GaussianPrior
    from operators.seeding import make_generator
    from operators.solvers import get_solver

    crop = torch.rand(1, 3, 32, 32, generator=make_generator(0, "probe"))
    op = build_degradation(po.tasks()[task.split("+")[0]]).bind(tuple(crop.shape), make_generator(0, "bind"))
    y = op.measure(crop, make_generator(0, "y"))
    try:
        nfe, config = PROBE.get(solver, (1, None))
        get_solver(solver)(y, op, GaussianPrior(), nfe=nfe, generator=make_generator(0, "s"), config=config)
    except (ValueError, NotImplementedError):
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solvers", nargs="+", default=["langevin", "diffpir", "ddnm"])
    ap.add_argument("--tasks", nargs="+", default=sorted(po.tasks()),
                    help="task names; a+b tunes one preset on the average of several")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--init", default=None, help="tune the refine family from this estimator (imdn)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import ray

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, object_store_memory=500 * 2**20,
             log_to_driver=False)
    crops = po.training_crops(args.crops, args.size)
    found: dict[str, dict[str, dict]] = {}
    log = []
    for solver in args.solvers:
        for task in args.tasks:
            if not applicable(solver, task):
                print(f"{solver:10s} {task:15s} not applicable")
                continue
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(trial, solver=solver, task=task, crops=crops, init=args.init), {"cpu": 1}),
                param_space=space(solver, task, args.init),
                tune_config=tune.TuneConfig(
                    metric="psnr", mode="max", num_samples=args.samples,
                    search_alg=tune.search.BasicVariantGenerator(points_to_evaluate=SEEDS.get((solver, task)))),
                run_config=tune.RunConfig(name=f"presets-{solver}-{task}", storage_path=str(po.REPO / "runs" / "tune"),
                                          verbose=0),
            )
            best = tuner.fit().get_best_result()
            keys = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in as_keys(best.config).items()}
            fam = "refine" if args.init else task_family(build_degradation(po.tasks()[task.split("+")[0]]))
            found.setdefault(solver, {})[fam] = keys
            log.append({"solver": solver, "task": task, "init": args.init, "nfe": NFE[solver], "psnr": best.metrics["psnr"],
                        "input_psnr": best.metrics["input_psnr"], "keys": keys})
            print(f"{solver:10s} {task:15s} psnr {best.metrics['psnr']:.2f} (input {best.metrics['input_psnr']:.2f}) "
                  f"{json.dumps(keys)}", flush=True)
    out = po.REPO / "runs" / f"tune-presets-{dt.datetime.now():%Y%m%d-%H%M}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(log, indent=1))
    if args.write:
        merge(found)
    print(f"trial log: {out}")


def merge(found: dict[str, dict[str, dict]]) -> None:
    """Merge ``found`` into configs/presets.yaml, keeping the header comment."""
    text = PRESETS.read_text() if PRESETS.exists() else ""
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    current = yaml.safe_load(text) or {}
    for solver, fams in found.items():
        current.setdefault(solver, {}).update(fams)
    PRESETS.write_text(header + yaml.safe_dump(current, sort_keys=True, default_flow_style=None))


if __name__ == "__main__":
    main()
