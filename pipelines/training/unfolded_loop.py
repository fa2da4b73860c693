"""The per-worker loop of the train-unfolded job (Ray Train's TorchTrainer; one CPU worker here,
GPU workers on a cluster): triples (x0, y, A) -> the full UD2M sampler -> L1 or L2 to x0 ->
Adam on the adapters and the per-step scalars; resumable checkpoints as the train-prior loop's.

Loss (say which): ``||UD2M(y; A) - x0||_1`` (or squared L2) on the output of all N outer x K
unfolded steps, backpropagated through every step (gradient checkpointing per step keeps
memory at one step's activations). The paper's adversarial and LPIPS terms are not
implemented (no discriminator; LPIPS needs an ImageNet backbone this project does not ship).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from operators.seeding import derive_seed
from pipelines.training.loop import _lr, save_checkpoint
from pipelines.training.unfolded_data import batch_source


class TrainableState:
    """What a checkpoint keeps of an unfolding: adapters + scalars, not the frozen prior."""

    def __init__(self, model):
        self.model = model

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.trainable_state_dict().items()}


def build_unfolding(cfg: dict, generator: torch.Generator):
    """The base prior of ``cfg["prior"]`` with a fresh UD2M (langevin init, zero LoRA) on it."""
    from operators.priors import build_prior
    from operators.solvers.unfolded import UD2M, UnfoldingConfig

    return UD2M(build_prior(cfg["prior"]), UnfoldingConfig(**cfg["unfolding"]), generator=generator)


def unfolding_loss(model, groups, n_outer: int, generator: torch.Generator, kind: str, device,
                   checkpointed: bool = True, backward: bool = True) -> float:
    """Mean loss over a batch of groups (one sampler run per group, weighted by its size);
    gradients accumulate when ``backward``."""
    total_n = sum(int(x0.shape[0]) for x0, _, _ in groups)
    total = 0.0
    for x0, y, op in groups:
        x0, y = x0.to(device), y.to(device)
        out = model(y, op, n_outer, generator, grad_checkpoint=checkpointed)
        err = (out - x0).abs() if kind == "l1" else (out - x0).square()
        loss = err.mean() * (x0.shape[0] / total_n)
        if backward:
            loss.backward()
        total += float(loss.detach())
    return total


def warm_start(core, path: str, expert: str | None) -> None:
    """Load ``path``'s adapters and step parameters into ``core`` (its expert for ``expert``, or
    the shared unfolding): a LoRA of a larger rank (or another alpha) than the file's starts as
    the file's (lora.widen_lora_state)."""
    from operators.priors.lora import lora_metadata, widen_lora_state
    from operators.solvers.unfolding_experts import select
    from operators.solvers.unfolding_file import read_unfolding

    state, meta, _ = select(*read_unfolding(path), expert)  # the expert's own layout where it has one
    saved = (int(meta.get("lora_rank", 0)), float(meta.get("lora_alpha", 0.0)))
    if saved[0] and saved != (core.config.lora_rank, core.config.lora_alpha):  # wider, or rescaled
        scalars = {k: v for k, v in state.items() if k.startswith("ud2m.")}
        adapters = widen_lora_state(core.prior, {k: v for k, v in state.items() if k not in scalars}, meta)
        state, meta = {**scalars, **adapters}, lora_metadata(core.prior)
    core.load_trainable_state(state, meta)


def train_unfolded_loop(cfg: dict) -> None:
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from operators.priors.lora import lora_metadata
    from operators.solvers.unfolding_experts import save_expert
    from operators.solvers.unfolding_file import save_unfolding

    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg["torch_threads"])
    rank = ray.train.get_context().get_world_rank()
    g = torch.Generator().manual_seed(derive_seed(cfg["seed"], "train-unfolded", rank))
    core = build_unfolding(cfg, torch.Generator().manual_seed(derive_seed(cfg["seed"], "lora-init")))
    batches = batch_source(cfg, g)
    model = ray.train.torch.prepare_model(core)
    device = core.delta0.device
    scalars = [getattr(core, n) for n in core.SCALARS]
    adapters = [p for n, p in core.named_parameters() if p.requires_grad and n.split(".")[0] == "prior"]
    groups = [{"params": scalars, "lr": cfg["lr_scalars"], "base": cfg["lr_scalars"]}]
    opt = torch.optim.Adam(groups + ([{"params": adapters, "lr": cfg["lr"], "base": cfg["lr"]}] if adapters else []))
    ckpt_dir, start, history = Path(cfg["checkpoint_dir"]), 0, []
    latest = ckpt_dir / "latest" / "state.pt"
    if cfg["resume"] and latest.is_file():
        state = torch.load(latest, map_location=device, weights_only=True)
        core.load_trainable_state(state["model"], lora_metadata(core.prior))
        opt.load_state_dict(state["opt"])
        g.set_state(state["rng"])
        start, history = state["step"], json.loads((latest.parent / "history.json").read_text())
    elif cfg.get("init_unfolding"):  # warm start (a fresh machine): adapters and scalars, new optimiser
        warm_start(core, cfg["init_unfolding"], cfg.get("expert"))
    n_outer = cfg["nfe"] // core.inner_steps
    trainable = scalars + adapters
    t0, running, step = time.perf_counter(), [], start
    for step in range(start, cfg["steps"]):
        factor = _lr(step, cfg, time.perf_counter() - t0) / cfg["lr"]  # warm-up + cosine, as train-prior
        for group in opt.param_groups:
            group["lr"] = group["base"] * factor
        opt.zero_grad(set_to_none=True)
        running.append(unfolding_loss(model, batches.next(), n_outer, g, cfg["loss"], device, cfg["grad_checkpoint"]))
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        done = step + 1
        out_of_time = cfg.get("max_minutes") and time.perf_counter() - t0 > 60 * cfg["max_minutes"]
        if done % cfg["log_every"] == 0 or done == cfg["steps"] or out_of_time:
            history.append({"step": done, "loss": sum(running) / len(running), "seconds": time.perf_counter() - t0,
                            **{k: v for k, v in core.learned().items() if k != "lora_layers"}})
            running, ckpt = [], None
            if rank == 0 and (done % cfg["checkpoint_every"] == 0 or done == cfg["steps"] or out_of_time):
                view = TrainableState(core)
                ckpt = Checkpoint.from_directory(str(save_checkpoint(ckpt_dir, view, view, opt, done, history, g)))
            ray.train.report({"step": done, "loss": history[-1]["loss"]}, checkpoint=ckpt)
        if out_of_time:
            break
    if rank == 0:
        meta = {"steps": step + 1, "train_seconds": round(time.perf_counter() - t0, 1), "loss": cfg["loss"],
                "data": cfg.get("pairs") or cfg.get("data_label", cfg["data"]), "operators": cfg["operators"],
                "noise_sigma": cfg["noise_sigma"], "nfe": cfg["nfe"], "patch": cfg["patch"],
                "batch_size": cfg["batch_size"], "base_prior": cfg["prior"],
                **({"init": cfg["init"]["name"]} if cfg.get("init") else {})}
        os.makedirs(os.path.dirname(os.path.abspath(cfg["output"])), exist_ok=True)
        if cfg.get("expert"):  # init_unfolding's file with this expert added or replaced
            save_expert(core, cfg["output"], cfg["init_unfolding"], cfg["expert"], meta)
        else:
            save_unfolding(core, cfg["output"], extra={k: json.dumps(v) for k, v in meta.items()})
