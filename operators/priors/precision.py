"""Compute precision of a prior's network: float32, or autocast to bfloat16 / float16.

Only the network's forward runs in the lower precision (``torch.autocast``): its weights, its
output (cast back) and every solver step around it stay float32. On a CPU with bfloat16
instructions (AVX512-BF16 / AMX) the embedded UNet runs ~1.5-2x faster at a PSNR change of
~0.001 dB (benchmarks/RESULTS.md); float16 is for GPUs. A CPU without bfloat16 support computes
it in software, slower than float32: measure first (benchmarks/prior_speed.py --dtype).
"""
from __future__ import annotations

from typing import Callable

import torch

DTYPES: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_dtype(name: str) -> torch.dtype | None:
    """The autocast dtype of a ``dtype`` key (None: plain float32). Raises ValueError naming the
    valid choices."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def run_network(net: Callable[..., torch.Tensor], dtype: torch.dtype | None, x: torch.Tensor,
                *args) -> torch.Tensor:
    """``net(x, *args)``, under autocast to ``dtype`` on x's device (None: as is), returned in
    x's dtype. Autograd flows through it (DPS differentiates the prior)."""
    if dtype is None:
        return net(x, *args)
    with torch.autocast(x.device.type, dtype=dtype):
        out = net(x, *args)
    return out.to(x.dtype)
