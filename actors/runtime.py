"""What the actors share: device choice, torch threads, HWC -> NCHW, and one timed, seeded solve.

Generators are always CPU generators, so a row's draws are the same on CPU and CUDA
(solvers draw through operators/solvers/common.randn_like on the generator's device and
move the noise to the image's device).
"""
from __future__ import annotations

import ctypes
import functools
import time
from typing import Sequence

import numpy as np
import torch

from operators.seeding import make_generator
from operators.solvers.base import SolverOutput
from operators.solvers.generators import GeneratorBatch
from operators.solvers.posterior import PosteriorConfig, posterior_samples


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


def release_freed_memory() -> None:
    """Hand the pages malloc holds free back to the OS (glibc ``malloc_trim(0)``, every arena).

    Stages that take segment after segment of frames call it after each batch: glibc keeps
    freed frame-sized blocks in its arenas (the mmap threshold rises to the largest block
    freed), so without it a worker grows to a fragmented high-water mark with the clip's length
    (restore-video's actors: 645 MB at 100 frames, 1,303 MB at 1,000). Milliseconds per call;
    a no-op off glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def setup_device(device: str = "auto", torch_threads: int | None = None) -> torch.device:
    """Set torch's intra-op threads (when given) and resolve ``auto`` to cuda or cpu."""
    if torch_threads:
        torch.set_num_threads(torch_threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def hwc_to_nchw(img: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, C) float32 -> (1, C, H, W) on ``device``, always a tensor of its own (a
    read-only view from ``unpack`` is copied, so a solver may write to it)."""
    chw = img.transpose(2, 0, 1)
    chw = np.ascontiguousarray(chw) if chw.flags.writeable else np.array(chw, order="C")
    return torch.from_numpy(chw)[None].to(device)


def nchw_to_hwc(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) -> (H, W, C) float32 numpy in [0, 1] (clamped)."""
    return x[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def timed_solve(solve, y: torch.Tensor, op, prior, nfe: int, config, seed: int, row_id: str | Sequence[str],
                posterior: PosteriorConfig | None = None) -> tuple[SolverOutput, float]:
    """Run ``solve`` with a CPU generator seeded by (seed, row_id, "solve"), ``posterior.samples``
    seeded samples in one batched call (operators.solvers.posterior); return (the output:
    x (B, C, H, W), std or None, NFE counts; seconds).

    ``row_id``: one id (y: (1, C, h, w)), or B ids of the B rows of y, each drawing from its
    own generator (operators.solvers.generators.GeneratorBatch), so row b gets the noise it
    would get solved alone."""
    p = posterior or PosteriorConfig()
    ids = [str(row_id)] if isinstance(row_id, str) else [str(r) for r in row_id]
    if len(ids) != y.shape[0]:
        raise ValueError(f"{len(ids)} row ids for a batch of {y.shape[0]} images")
    gens = [make_generator(seed, rid, "solve") for rid in ids]  # CPU: same draws on any device
    gen = gens[0] if len(gens) == 1 else GeneratorBatch(gens)
    t0 = time.perf_counter()
    with torch.no_grad():  # solvers that need gradients enable them themselves
        result = posterior_samples(solve, y, op, prior, nfe=int(nfe), generator=gen, config=config,
                                   samples=p.samples, estimate=p.estimate or "mean")
    return result, time.perf_counter() - t0
