"""A trained UD2M unfolding as one safetensors file: the LoRA adapters and learned scalars, with
metadata naming its :class:`~operators.solvers.unfolded.UnfoldingConfig` and the base prior it
was trained on (class and sha256 of its weights). Loading refuses any other base prior: the
adapters and steps are only meaningful on top of the exact weights they were trained with.
A file may also hold operator-family experts (operators/solvers/unfolding_experts.py): loading
for a family with an expert gives that expert, for any other the shared unfolding."""
from __future__ import annotations

import copy
import functools
import json
import weakref
from pathlib import Path

import torch

from operators.priors.base import Prior
from operators.priors.lora import base_weights_digest, lora_metadata
from operators.priors.paths import shipped_weights
from operators.solvers import unfolding_experts
from operators.solvers.tiling import TiledPrior
from operators.solvers.unfolded import UD2M, UnfoldingConfig

KIND = "ud2m_unfolding"
DEFAULT_UNFOLDING = "embedded_ud2m"  # weights/embedded_ud2m.safetensors
_DIGESTS: weakref.WeakKeyDictionary[Prior, str] = weakref.WeakKeyDictionary()
_LOADED: weakref.WeakKeyDictionary[Prior, dict[tuple, UD2M]] = weakref.WeakKeyDictionary()


def prior_digest(prior: Prior) -> str:
    """``<class>:<sha256 of the base weights>`` of a prior (cached per prior object)."""
    prior = prior.inner if isinstance(prior, TiledPrior) else prior
    if prior not in _DIGESTS:
        _DIGESTS[prior] = f"{type(prior).__name__}:{base_weights_digest(prior)}"
    return _DIGESTS[prior]


def save_unfolding(model: UD2M, path: str | Path, extra: dict[str, str] | None = None) -> None:
    """Adapters + scalars as float32 safetensors; metadata: kind, config, base_digest, the
    adapters' layout, learned values (JSON) and ``extra`` (training facts)."""
    from safetensors.torch import save_file

    meta = {"format": "pt", "kind": KIND, "config": model.config.to_json(), "base_digest": prior_digest(model.prior),
            "learned": json.dumps(model.learned()), **lora_metadata(model.prior), **(extra or {})}
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.trainable_state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def resolve_path(unfolding: str | Path | None) -> Path:
    """The file an ``unfolding`` setting names: None -> the shipped weights/embedded_ud2m.safetensors
    (a clear error while it is not trained and shipped), a bare name -> weights/<name>.safetensors,
    else the path itself."""
    path = shipped_weights(unfolding or DEFAULT_UNFOLDING)
    if path.is_file():
        return path
    if unfolding is None:
        raise FileNotFoundError(
            f"solver 'ud2m': no trained unfolding is shipped yet ({path} does not exist); train one with "
            "`restoray run configs/train-unfolded.yaml` and set `unfolding: <its .safetensors>`, or use "
            "`unfolding: untrained` for the sampler at its langevin initialisation")
    raise FileNotFoundError(f"solver 'ud2m': unfolding file not found: {path}")


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int, size: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def read_unfolding(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of an unfolding file; raises when it is not one."""
    p = Path(path).resolve()
    st = p.stat()
    state, meta = _read(str(p), st.st_mtime_ns, st.st_size)
    if meta.get("kind") != KIND:
        raise ValueError(f"{path} is not a UD2M unfolding (metadata kind={meta.get('kind')!r})")
    return state, meta


def load_unfolding(path: str | Path, prior: Prior, merge: bool = True, copy_prior: bool = True,
                   family: str | None = None) -> UD2M:
    """The unfolding at ``path`` on ``prior``; a ValueError names both digests when ``prior`` is
    not the base it was trained on. ``copy_prior``: adapt a deep copy (sharing the NFE counter),
    leaving ``prior`` as it was; ``merge``: fold the adapters into the weights (inference);
    ``family``: an operator family whose expert the file holds loads that expert."""
    prior = prior.inner if isinstance(prior, TiledPrior) else prior
    state, meta, _ = unfolding_experts.select(*read_unfolding(path), family)
    have = prior_digest(prior)
    if have != meta.get("base_digest"):
        raise ValueError(
            f"unfolding {path} was trained on base prior {meta.get('base_digest', '?')[:40]}... "
            f"(base prior spec {meta.get('base_prior', '?')}), but this prior is {have[:40]}...; "
            "load it on the exact weights it was trained on, or retrain it on these")
    adapted = prior
    if copy_prior and json.loads(meta.get("lora_layers", "[]")):
        adapted = copy.deepcopy(prior)
        adapted.nfe = prior.nfe
    model = UD2M(adapted, UnfoldingConfig.from_json(meta["config"]), lora=False)
    model.load_trainable_state({k: v.to(model.delta0.device) for k, v in state.items()}, meta, merge)
    return model.to(next(iter(prior.parameters()), model.delta0).device)


def cached_unfolding(path: Path, prior: Prior, family: str | None = None) -> UD2M:
    """:func:`load_unfolding` merged on a copy of ``prior`` (the expert for ``family`` where the
    file has one), kept while ``prior`` lives (an actor loads it once, not per row)."""
    prior = prior.inner if isinstance(prior, TiledPrior) else prior
    st = path.stat()
    expert = family if family in unfolding_experts.experts(read_unfolding(path)[1]) else None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, expert)
    models = _LOADED.setdefault(prior, {})
    if key in models:
        return models[key]
    model = load_unfolding(path, prior, family=expert).requires_grad_(False).eval()
    if model.prior is not prior:  # no adapters: nothing worth keeping (and no cycle to the key)
        for stale in [k for k in models if k[:3] != key[:3]]:  # other files; this file's experts stay
            del models[stale]
        models[key] = model
    return model
