"""One generator per image row, so rows of equal shape can share one solve and still draw
exactly the noise each would draw alone; and the solvers whose rows cannot share one.

EDM's ``generate.py`` seeds one generator per sample for the same reason: a sample must not
depend on which other samples it was batched with.
"""
from __future__ import annotations

from typing import Sequence

import torch

# Solvers whose batch rows are not independent, so rows batched together would not give what
# each gives alone: their rows are solved one per call.
ROW_COUPLED = {
    "pnp_ula": "its step size comes from one power iteration over the whole batch",
    "ddnm": "its range-space noise weight comes from one probe over the whole batch",
    "langevin_video": "its batch is a clip's frames, which share noise",
}


class GeneratorBatch:
    """B generators, one per image row, used in place of one ``torch.Generator``.

    A batch of N = B n rows splits into B consecutive groups of n; group b (rows b n .. b n + n - 1)
    is drawn from generator b in one ``torch.randn((n, ...))`` call, the very call a solve of
    that row alone (batch n) makes, so each row's draws are bit-identical to its lone solve.
    With S posterior samples n = S and group b is image b's S copies (the layout of
    :func:`operators.solvers.posterior.posterior_samples`). Draw through
    :func:`operators.solvers.common.randn_like`.
    """

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = tuple(generators)
        if not self.generators:
            raise ValueError("GeneratorBatch needs at least one generator")
        devices = {g.device for g in self.generators}
        if len(devices) != 1:
            raise ValueError(f"GeneratorBatch generators must share one device, got {sorted(map(str, devices))}")
        self.device = self.generators[0].device

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal noise of ``shape`` = (B n, ...) on ``self.device``, group b from generator b."""
        shape = tuple(shape)
        if not shape or shape[0] % len(self):
            raise ValueError(f"noise of shape {shape} cannot be split over {len(self)} row generators: "
                             f"its first dimension must be a multiple of {len(self)}")
        n = shape[0] // len(self)
        return torch.cat([torch.randn((n, *shape[1:]), generator=g, dtype=dtype, device=self.device)
                          for g in self.generators])

    def get_state(self) -> torch.Tensor:
        """Every generator's state, concatenated (equal before and after: nothing was drawn)."""
        return torch.cat([g.get_state() for g in self.generators])

    def set_state(self, state: torch.Tensor) -> GeneratorBatch:
        """Restore states taken by :meth:`get_state`."""
        for g, s in zip(self.generators, state.chunk(len(self)), strict=True):
            g.set_state(s.clone())  # a view of the concatenation crashes set_state
        return self
