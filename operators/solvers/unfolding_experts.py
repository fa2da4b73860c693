"""Operator-conditioned experts inside one UD2M unfolding file.

An unfolding file holds its shared unfolding (adapters + per-step scalars, trained on the whole
operator family) and, optionally, experts: the same LoRA layers and UnfoldingConfig, fine-tuned
on one operator family of it alone, stored as ``expert.<family>.<tensor name>`` and listed in the
metadata key ``experts`` (JSON: family -> training facts and learned values). An expert may have
a wider LoRA than the shared unfolding (``lora.widen_lora_state``); its rank and alpha (and the
config that says so) are in its facts under ``layout``. At
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


LAYOUT = ("config", "lora_rank", "lora_alpha")  # metadata an expert may have its own of (a wider LoRA)


def select(state: dict[str, torch.Tensor], meta: dict[str, str], family: str | None,
           ) -> tuple[dict[str, torch.Tensor], dict[str, str], str | None]:
    """(the tensors of the expert for ``family``, the metadata to load them with: the file's with
    the expert's own layout, its name), or (the shared tensors, the file's metadata, None) when the
    file has no expert for it."""
    name = family if family in experts(meta) else None
    if name is None:
        return {k: v for k, v in state.items() if not k.startswith(PREFIX)}, meta, None
    prefix = f"{PREFIX}{name}."
    own = {**meta, **experts(meta)[name].get("layout", {})}
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, own, name


def with_expert(base_state: dict[str, torch.Tensor], base_meta: dict[str, str], family: str,
                trained: dict[str, torch.Tensor], meta: dict[str, str], facts: dict,
                ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The base file's tensors and metadata with ``trained`` as its expert for ``family`` (added
    or replaced; the shared unfolding and other experts kept). ``meta``: the trained model's
    own metadata (layout and base prior), which must match the base file's but for a LoRA rank
    at least the shared unfolding's (kept in ``facts["layout"]``)."""
    from operators.solvers.unfolded import UnfoldingConfig

    mine, theirs = (UnfoldingConfig.from_json(m["config"]) for m in (meta, base_meta))
    differs = {"config": mine.but_lora_size() != theirs.but_lora_size(),
               "base_digest": meta.get("base_digest") != base_meta.get("base_digest"),
               "lora_layers": meta.get("lora_layers") != base_meta.get("lora_layers"),
               "lora_rank": int(meta["lora_rank"]) < int(base_meta["lora_rank"])}
    for key in (k for k, bad in differs.items() if bad):
        raise ValueError(f"expert {family!r}: its {key} differs from the unfolding it joins "
                         f"({str(meta.get(key))[:60]} vs {str(base_meta.get(key))[:60]}); an expert is "
                         "fine-tuned from that unfolding, on the same base prior (its LoRA may only be wider)")
    facts = {**facts, "layout": {k: meta[k] for k in LAYOUT}}
    shared, _, _ = select(base_state, {}, None)
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
