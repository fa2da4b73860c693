"""Safetensors files of the small trained networks (INN, conditional UNet, IR-SDE net): one way
to write and read them, the architecture's JSON config and a ``kind`` in the metadata."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch

M = TypeVar("M", bound=torch.nn.Module)


def unwrap(model: torch.nn.Module, cls: type[M]) -> M:
    """The ``cls`` network inside a DDP wrapper (or the model itself); anything else raises."""
    net = model.module if hasattr(model, "module") else model
    if not isinstance(net, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(net).__name__}")
    return net


def save_model(net: torch.nn.Module, path: str | Path, kind: str, config_json: str,
               extra: dict[str, str] | None = None, dtype: torch.dtype = torch.float32) -> None:
    """Weights in ``dtype``; metadata: ``kind``, the JSON config, and ``extra`` strings."""
    from safetensors.torch import save_file

    meta = {"format": "pt", "kind": kind, "config": config_json, **(extra or {})}
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in net.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def read_model(path: str | Path, kind: str, what: str) -> tuple[str, dict[str, torch.Tensor]]:
    """(the JSON config, the float32 state dict) of a file of ``kind``; another kind is refused,
    naming ``what`` it should have been."""
    from safetensors.torch import load_file

    from operators.priors.edm_unet import read_metadata

    meta = read_metadata(path)
    if meta.get("kind") != kind or "config" not in meta:
        raise ValueError(f"{path} is not {what} file (metadata kind={meta.get('kind')!r}, expected {kind!r})")
    return meta["config"], {k: v.float() for k, v in load_file(str(path), device="cpu").items()}
