"""After train-unfolded: the trained unfolding against its untrained start on fresh triples (PSNR
and a labelled sample grid for MLflow), and a model card stub beside the weights."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pipelines.training.model_card import loss_table


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def validate_unfolding(cfg: dict) -> tuple[dict[str, float], bytes]:
    """({"init_estimate", "untrained", "trained"}: mean PSNR in dB, PNG grid) on ``val_images``
    triples drawn from the training source with a seed of their own (fresh crops and operators
    from the training images or pairs: a check of the fit, not a held-out evaluation; the
    evaluate job does that). Loading the file also proves it loads on its base prior."""
    from operators.comparison import Panel, labelled_grid
    from operators.media import encode_png
    from operators.metrics.psnr import psnr
    from operators.priors import build_prior
    from operators.seeding import derive_seed, make_generator
    from operators.solvers.unfolded import UD2M
    from operators.solvers.unfolding_file import load_unfolding
    from pipelines.training.unfolded_data import batch_source

    if not cfg["val_images"]:
        return {}, b""
    prior = build_prior(cfg["prior"])
    trained = load_unfolding(cfg["output"], prior, family=cfg.get("expert")).requires_grad_(False)
    untrained = UD2M(prior, trained.config, lora=False).requires_grad_(False)
    n_outer = cfg["nfe"] // trained.inner_steps
    source = batch_source(cfg, torch.Generator().manual_seed(derive_seed(cfg["seed"], "validation")), batch_size=1)
    scores: dict[str, list[float]] = {"init_estimate": [], "untrained": [], "trained": []}
    rows = []
    for i in range(cfg["val_images"]):
        x0, y, op = source.next()[0]
        outs = {"init_estimate": op.init_estimate(y).clamp(0, 1)}
        with torch.no_grad():
            for name, model in (("untrained", untrained), ("trained", trained)):
                outs[name] = model(y, op, n_outer, make_generator(cfg["seed"], "validation", i)).clamp(0, 1)
        panels = []
        for name, out in outs.items():
            scores[name].append(float(psnr(out, x0)[0]))
            panels.append(Panel(f"{name} ({op.name})" if name == "init_estimate" else name, _hwc(out),
                                f"PSNR {scores[name][-1]:.2f}"))
        rows.append(labelled_grid(panels + [Panel("reference", _hwc(x0))], height=128))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    return {k: float(np.mean(v)) for k, v in scores.items()}, encode_png(np.concatenate(rows))


def write_card(output: str, validation: dict[str, float]) -> Path:
    """``<output>.md``: a model card stub from the file's metadata and training history; the
    evaluation section stays to be filled from the evaluate grid (benchmarks/RESULTS.md)."""
    from operators.solvers.unfolding_file import read_unfolding

    _, meta = read_unfolding(output)
    hist_path = Path(output + ".history.json")
    history = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    val = "\n".join(f"| {k} | {v:.2f} |" for k, v in validation.items())
    card = f"""# UD2M unfolding (model card stub)

File: `{Path(output).name}` (safetensors: LoRA adapters + per-step scalars only; load with
`solver: {{name: ud2m, nfe: N, unfolding: <path>}}`, N = nfe // K outer steps of K unfolded steps).

## What it is

Kemajou Mbakam, Spence, Pereyra, arXiv 2507.02686 (UD2M), restoray's parametrisation
(operators/solvers/unfolded.py): the `langevin` step unfolded K times in a DDIM-like outer loop;
learned: per-step log step sizes and noise-level scales, LoRA on the base prior's network.
It only loads on the base prior whose weights digest it records.

- Base prior: `{meta.get('base_prior', '?')}`, digest `{meta.get('base_digest', '?')}`
- Unfolding config: `{meta.get('config', '?')}`
- Learned values: `{meta.get('learned', '?')}`
- Operator-family experts (fine-tuned from it; their training facts and learned values):
  `{meta.get('experts', 'none')}`

## Training

- Job: `restoray run configs/train-unfolded.yaml` (Ray Train TorchTrainer).
- Data: `{meta.get('data', '?')}`; operator family `{meta.get('operators', '?')}`, noise sigma
  `{meta.get('noise_sigma', '?')}`; patch {meta.get('patch', '?')}, batch {meta.get('batch_size', '?')},
  NFE while training {meta.get('nfe', '?')}.
- Loss: {meta.get('loss', '?')} on the output of the whole unfolded sampler (no adversarial or LPIPS term).
- Steps and wall time: {meta.get('steps', '?')} steps, {float(meta.get('train_seconds', 0)) / 60:.1f} minutes
  (last run). Hardware: TO FILL.

{loss_table(history)}

## Check on fresh training-distribution triples (PSNR, dB)

| estimate | PSNR |
|---|---:|
{val}

## Evaluation

TO FILL: the evaluate grid on CBSD68 crops at equal NFE against untrained `langevin` and the
classical baselines, and an operator outside the training family (benchmarks/RESULTS.md).
"""
    path = Path(output).with_suffix(".md")
    path.write_text(card)
    return path
