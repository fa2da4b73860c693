"""The per-worker training loop run by Ray Train's TorchTrainer (one CPU worker here, GPU
workers on a cluster): patches -> objective -> Adam + EMA, resumable checkpoints."""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch

from operators.seeding import derive_seed
from pipelines.training.data import PatchSampler, load_images
from pipelines.training.objectives import build_objective
from pipelines.training.pair_batches import pair_source
from pipelines.training.paired_objective import PAIRED


def _lr(step: int, cfg: dict, elapsed_s: float) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak over the run, where the run's
    progress is the larger of step / steps and elapsed / max_minutes (a time budget decays too)."""
    warm = cfg["warmup_steps"]
    if step < warm:
        return cfg["lr"] * (step + 1) / warm
    t = (step - warm) / max(1, cfg["steps"] - warm)
    if cfg.get("max_minutes"):
        t = max(t, elapsed_s / (60 * cfg["max_minutes"]))
    return cfg["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def save_checkpoint(ckpt_dir: Path, model, ema, opt, step: int, history: list, g: torch.Generator) -> Path:
    """Atomic: written to a temp dir, then renamed over ``latest``."""
    tmp = ckpt_dir / f".tmp-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                "rng": g.get_state(), "step": step}, tmp / "state.pt")
    (tmp / "history.json").write_text(json.dumps(history))
    final = ckpt_dir / "latest"
    old = ckpt_dir / ".old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def train_loop(cfg: dict) -> None:
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg["torch_threads"])
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    g = torch.Generator().manual_seed(derive_seed(cfg["seed"], "train", rank))
    if cfg["model"] in PAIRED:  # (hq, lq) batches
        sampler = pair_source(cfg, g)
    else:
        sampler = PatchSampler(load_images(cfg["data"], cfg["grey"], cfg.get("limit_images")),
                               cfg["patch"], cfg["batch_size"], g)
    obj = build_objective(cfg, sampler.sample)
    ema = copy.deepcopy(obj.model).requires_grad_(False)
    model = ray.train.torch.prepare_model(obj.model)
    device = next(model.parameters()).device
    ema.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    ckpt_dir = Path(cfg["checkpoint_dir"])
    start, history = 0, []
    latest = ckpt_dir / "latest" / "state.pt"
    if cfg["resume"] and latest.is_file():
        state = torch.load(latest, map_location=device, weights_only=True)
        (model.module if hasattr(model, "module") else model).load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["rng"])
        start = state["step"]
        history = json.loads((latest.parent / "history.json").read_text())
    t0, running = time.perf_counter(), []
    step = start
    for step in range(start, cfg["steps"]):
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg, time.perf_counter() - t0)
        batch = sampler.sample()
        batch = tuple(t.to(device) for t in batch) if isinstance(batch, tuple) else batch.to(device)
        loss = obj.loss(batch, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # EMA with warm-up: early averages do not keep the random init
            decay = min(cfg["ema"], (1 + step) / (10 + step))
            src = model.module if hasattr(model, "module") else model
            for pe, pm in zip(ema.parameters(), src.parameters()):
                pe.lerp_(pm, 1 - decay)
        running.append(float(loss.detach()))
        done = step + 1
        out_of_time = cfg.get("max_minutes") and time.perf_counter() - t0 > 60 * cfg["max_minutes"]
        if done % cfg["log_every"] == 0 or done == cfg["steps"] or out_of_time:
            history.append({"step": done, "loss": sum(running) / len(running),
                            "seconds": time.perf_counter() - t0})
            running = []
            ckpt = None
            if rank == 0 and (done % cfg["checkpoint_every"] == 0 or done == cfg["steps"] or out_of_time):
                src = model.module if hasattr(model, "module") else model
                ckpt = Checkpoint.from_directory(str(save_checkpoint(ckpt_dir, src, ema, opt, done, history, g)))
            ray.train.report({"step": done, "loss": history[-1]["loss"]}, checkpoint=ckpt)
        if out_of_time:
            break
    if rank == 0:
        meta = {"steps": step + 1, "train_seconds": round(time.perf_counter() - t0, 1), "data": cfg.get("data_label", cfg["data"]),
                "patch": cfg["patch"], "batch_size": cfg["batch_size"]}
        if cfg["model"] in PAIRED:
            meta.update({"pairs": cfg.get("pairs"), "degradation": cfg["degradation"], "scales": cfg["scales"],
                         "latent_prior": cfg.get("latent_prior")})
        os.makedirs(os.path.dirname(os.path.abspath(cfg["output"])), exist_ok=True)
        obj.save(ema, cfg["output"], extra=meta)
