"""Deterministic generators: every random draw comes from (job seed, row id)."""
from __future__ import annotations

import hashlib

import torch


def derive_seed(job_seed: int, *parts: object) -> int:
    """A 63-bit seed from the job seed and any identifying parts (row id, stage name ...)."""
    h = hashlib.sha256(repr((int(job_seed),) + tuple(str(p) for p in parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def make_generator(job_seed: int, *parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded by :func:`derive_seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(job_seed, *parts))
    return g
