"""Operator-conditioned experts inside one UD2M unfolding file.

An unfolding file holds its shared unfolding (adapters + per-step scalars, trained on the whole
operator family) and, optionally, experts: the same layout (LoRA layers, rank, UnfoldingConfig)
fine-tuned on one operator family of it alone, stored as ``expert.<family>.<tensor name>`` and
listed in the metadata key ``experts`` (JSON: family -> training facts and learned values). At
inference the solver picks the expert of the degradation's preset family
(:func:`operators.solvers.presets.task_family`: ``deblur`` = Gaussian blur, ``sr``, ...) and the
shared unfolding for every other operator, so an operator outside the training family (a motion
kernel, inpainting, JPEG) runs exactly as it did before experts were added. The paper trains one
model per task and a "general" one (Kemajou Mbakam et al., arXiv 2507.02686, Sec. 4); experts are
that, sharing one base prior, one file and one digest.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

PREFIX = "expert."


def experts(meta: dict[str, str]) -> dict[str, dict]:
    """{family: its training facts} of an unfolding file's metadata ({} when it has none)."""
    return json.loads(meta.get("experts", "{}"))


def select(state: dict[str, torch.Tensor], meta: dict[str, str], family: str | None,
           ) -> tuple[dict[str, torch.Tensor], str | None]:
    """(the tensors of the expert for ``family``, its name), or (the shared tensors, None) when
    the file has no expert for it."""
    name = family if family in experts(meta) else None
    prefix = f"{PREFIX}{name}." if name else None
    if prefix:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, name
    return {k: v for k, v in state.items() if not k.startswith(PREFIX)}, None


def with_expert(base_state: dict[str, torch.Tensor], base_meta: dict[str, str], family: str,
                trained: dict[str, torch.Tensor], meta: dict[str, str], facts: dict,
                ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The base file's tensors and metadata with ``trained`` as its expert for ``family`` (added
    or replaced; the shared unfolding and other experts kept). ``meta``: the trained model's
    own metadata (layout and base prior), which must match the base file's."""
    for key in ("config", "base_digest", "lora_layers", "lora_rank", "lora_alpha"):
        if meta.get(key) != base_meta.get(key):
            raise ValueError(f"expert {family!r}: its {key} differs from the unfolding it joins "
                             f"({str(meta.get(key))[:60]} vs {str(base_meta.get(key))[:60]}); an expert "
                             "is fine-tuned from that unfolding, on the same base prior")
    shared, _ = select(base_state, {}, None)
    if set(trained) != set(shared):
        raise ValueError(f"expert {family!r}: its tensors do not match the shared unfolding's layout")
    kept = {k: v for k, v in base_state.items() if not k.startswith(f"{PREFIX}{family}.")}
    state = {**kept, **{f"{PREFIX}{family}.{k}": v for k, v in trained.items()}}
    table = {**experts(base_meta), family: facts}
    return state, {**base_meta, "experts": json.dumps(table, sort_keys=True)}


def save_expert(model, path: str | Path, base: str | Path, family: str, facts: dict) -> None:
    """Write ``base``'s unfolding with ``model``'s trainable state as its ``family`` expert to
    ``path`` (which may be ``base`` itself). ``facts`` (the run's steps, seconds, operators, ...)
    gain ``steps_total``: the run's steps plus those of the expert it continued, if any."""
    from safetensors.torch import save_file

    from operators.priors.lora import lora_metadata
    from operators.solvers.unfolding_file import prior_digest, read_unfolding

    base_state, base_meta = read_unfolding(base)
    own = {"config": model.config.to_json(), "base_digest": prior_digest(model.prior), **lora_metadata(model.prior)}
    trained = {k: v.detach().float().contiguous().cpu() for k, v in model.trainable_state_dict().items()}
    before = experts(base_meta).get(family, {})
    total = int(before.get("steps_total", before.get("steps", 0))) + int(facts.get("steps", 0))
    state, meta = with_expert(dict(base_state), base_meta, family, trained, own,
                              {**facts, "steps_total": total, "learned": model.learned()})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)
