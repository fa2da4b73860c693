"""Low-rank adapters (LoRA) on the conv and linear layers of a denoiser.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (ICLR 2022), Eq. 3:
h = W0 x + (alpha / r) B A x, with A ("down") random and B ("up") zero at init, so an adapted
network starts as its base exactly. A Conv2d of any kernel gets a down conv with the base's
kernel, stride, padding and dilation into r channels and a 1x1 up conv back; its merged weight
is W0 + (alpha / r) B A (an exact identity for 1x1 and k x k kernels alike). Adapters are
injected by module-name pattern (fnmatch on the dotted names ``named_modules`` gives), saved as
their own safetensors file apart from the base weights, and merged into the base or not.
UD2M (Kemajou Mbakam et al., arXiv 2507.02686) fine-tunes its denoiser this way.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

# Layer patterns per network family (names relative to the prior: ``net.`` is the embedded
# EDM UNet, ``unet.`` a diffusers UNet). EDM UNet: the residual blocks' convs and the attention.
EDM_UNET_TARGETS = ("net.*.conv1", "net.*.conv2", "net.*.qkv", "net.*.proj")
DIFFUSERS_TARGETS = ("unet.*.to_q", "unet.*.to_k", "unet.*.to_v", "unet.*.to_out.0",
                     "unet.*.conv1", "unet.*.conv2")


class LoRALayer(nn.Module):
    """y = base(x) + (alpha / r) up(down(x)); ``merged``: the update lives in base's weight."""

    def __init__(self, base: nn.Module, down: nn.Module, up: nn.Module, rank: int, alpha: float,
                 generator: torch.Generator | None):
        super().__init__()
        self.base, self.down, self.up = base, down, up
        self.rank, self.alpha, self.scale, self.merged = rank, float(alpha), float(alpha) / rank, False
        fan_in = down.weight[0].numel()  # kaiming-uniform(a = sqrt(5)) as nn.Linear / nn.Conv2d use
        with torch.no_grad():
            down.weight.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)
            up.weight.zero_()
        self.to(device=base.weight.device, dtype=base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return out if self.merged else out + self.scale * self.up(self.down(x))

    def delta_weight(self) -> torch.Tensor:
        """(alpha / r) B A, shaped like ``base.weight``."""
        up = self.up.weight.reshape(self.up.weight.shape[0], self.rank)
        return self.scale * (up @ self.down.weight.reshape(self.rank, -1)).reshape(self.base.weight.shape)

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False


def wrap(base: nn.Module, rank: int, alpha: float, generator: torch.Generator | None = None) -> LoRALayer:
    """The adapter for one ``nn.Conv2d`` (groups 1) or ``nn.Linear``."""
    if isinstance(base, nn.Conv2d):
        if base.groups != 1:
            raise ValueError(f"LoRA needs a dense conv, got groups={base.groups}")
        down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation,
                         bias=False, padding_mode=base.padding_mode)
        return LoRALayer(base, down, nn.Conv2d(rank, base.out_channels, 1, bias=False), rank, alpha, generator)
    if isinstance(base, nn.Linear):
        return LoRALayer(base, nn.Linear(base.in_features, rank, bias=False),
                         nn.Linear(rank, base.out_features, bias=False), rank, alpha, generator)
    raise TypeError(f"LoRA wraps nn.Conv2d and nn.Linear, got {type(base).__name__}")


def inject_lora(model: nn.Module, targets: Sequence[str], rank: int, alpha: float,
                generator: torch.Generator | None = None) -> list[str]:
    """Replace every Conv2d / Linear of ``model`` whose dotted name matches one of ``targets``
    (fnmatch) with a :class:`LoRALayer`; returns the names, sorted. Adapters already in place
    are left alone; a non-empty ``targets`` that matches nothing raises, listing candidates."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    inside = {f"{n}.{c}" for n, m in model.named_modules() if isinstance(m, LoRALayer) for c in ("base", "down", "up")}
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in inside]
    names = sorted(n for n, _ in layers if any(fnmatch.fnmatchcase(n, p) for p in targets))
    if targets and not names and not lora_layers(model):
        shown = ", ".join(n for n, _ in layers[:8])
        raise ValueError(f"no Conv2d/Linear layer matches the LoRA targets {list(targets)}; layers: {shown} ...")
    modules = dict(model.named_modules())
    for name in names:
        parent, _, leaf = name.rpartition(".")
        setattr(modules[parent] if parent else model, leaf, wrap(modules[name], rank, alpha, generator))
    return names


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    """{dotted name: adapter} of every adapter in ``model``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALayer)}


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.unmerge()


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters: ``{name}.down.weight`` and ``{name}.up.weight`` per layer."""
    return {f"{n}.{part}.weight": getattr(m, part).weight for n, m in lora_layers(model).items()
            for part in ("down", "up")}


def lora_metadata(model: nn.Module) -> dict[str, str]:
    """What rebuilds the adapters: layer names, rank and alpha (one per model)."""
    layers = lora_layers(model)
    first = next(iter(layers.values()), None)
    return {"lora_layers": json.dumps(sorted(layers)), "lora_rank": str(first.rank if first else 0),
            "lora_alpha": str(first.alpha if first else 0.0)}


def load_lora_state(model: nn.Module, state: dict[str, torch.Tensor], meta: dict[str, str],
                    merge: bool = False) -> list[str]:
    """Inject the adapters ``meta`` names (exact names, not patterns) and load ``state`` into
    them; ``merge``: fold them into the base weights. Missing or extra tensors raise."""
    names = json.loads(meta.get("lora_layers", "[]"))
    if names:
        inject_lora(model, [n.replace("[", "[[]") for n in names], int(meta["lora_rank"]), float(meta["lora_alpha"]))
    layers = lora_layers(model)
    missing = sorted(set(names) - set(layers))
    if missing:
        raise ValueError(f"the adapters name layers this network lacks: {missing[:4]}")
    expected = {f"{n}.{p}.weight" for n in names for p in ("down", "up")}
    if set(state) != expected:
        raise ValueError(f"adapter tensors do not match their layers: missing {sorted(expected - set(state))[:4]}, "
                         f"extra {sorted(set(state) - expected)[:4]}")
    with torch.no_grad():
        for key, value in state.items():
            name, part, _ = key.rsplit(".", 2)
            getattr(layers[name], part).weight.copy_(value)
    if merge:
        merge_lora(model)
    return names


def widen_lora_state(model: nn.Module, state: dict[str, torch.Tensor], meta: dict[str, str]) -> dict[str, torch.Tensor]:
    """``state`` (adapters saved at ``meta``'s rank and alpha) as tensors for ``model``'s adapters
    (the same layers, a rank at least as large), computing the same function: the saved A rows
    come first and ``model``'s own (random) rows fill the rest; the saved B columns are rescaled by
    old / new alpha-over-rank and the new columns are zero, so B A (times its scale) is unchanged
    and the added rank starts as LoRA's own init does, ready to train."""
    layers, out = lora_layers(model), {}
    old_rank, old_scale = int(meta["lora_rank"]), float(meta["lora_alpha"]) / int(meta["lora_rank"])
    for key, value in state.items():
        name, part, _ = key.rsplit(".", 2)
        layer = layers.get(name)
        if layer is None or layer.rank < old_rank:
            raise ValueError(f"widening LoRA {key}: {'no adapter there' if layer is None else f'rank {layer.rank} < {old_rank}'}")
        mine = getattr(layer, part).weight.detach().clone()
        if part == "down":
            mine[:old_rank] = value.to(mine.dtype)
        else:
            mine.zero_()
            mine[:, :old_rank] = value.to(mine.dtype) * (old_scale / layer.scale)
        out[key] = mine
    return out


def save_lora(model: nn.Module, path: str | Path, extra: dict[str, str] | None = None) -> None:
    """The adapters alone as safetensors (float32), metadata kind ``lora``."""
    from safetensors.torch import save_file

    state = {k: v.detach().float().contiguous().cpu() for k, v in lora_state_dict(model).items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt", "kind": "lora", **lora_metadata(model), **(extra or {})})


def load_lora(model: nn.Module, path: str | Path, merge: bool = False) -> list[str]:
    """Inject and load the adapters saved by :func:`save_lora` (merged into the base or not)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("kind") != "lora":
        raise ValueError(f"{path} is not a LoRA file (metadata kind={meta.get('kind')!r})")
    return load_lora_state(model, state, meta, merge)


def base_weights_digest(model: nn.Module) -> str:
    """sha256 of the base weights under any adapters (names, dtypes, shapes, bytes; adapters
    skipped, ``.base`` folded out of names), so an adapted network digests like its base.
    Raises while adapters are merged: the weights would not be the base's."""
    if any(layer.merged for layer in lora_layers(model).values()):
        raise ValueError("unmerge the LoRA adapters before digesting the base weights")
    adapters = {f"{n}.{p}." for n in lora_layers(model) for p in ("down", "up")}
    h = hashlib.sha256()
    items = [(k.replace(".base.", "."), v) for k, v in model.state_dict().items()
             if not any(k.startswith(a) for a in adapters)]
    for key, value in sorted(items, key=lambda kv: kv[0]):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
