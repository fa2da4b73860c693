"""Training pairs (hq, lq) for the blind methods (INN, conditional diffusion, IR-SDE).

Two sources, one interface (``sample() -> (hq (B, C, P, P), lq (B, C, P/s, P/s))`` in [0, 1]):

- :class:`DegradedPatches`: random HQ patches (``PatchSampler``) degraded on the fly, each
  patch by its own operator drawn from ``degradation`` (the Real-ESRGAN chain by default:
  blur, resize, noise, JPEG, twice) at a scale drawn per batch from ``scales`` (one scale per
  batch so the batch stacks); deterministic given the generator.
- :class:`ParquetPatches`: pairs written by ``synth-pairs`` (``pipelines.pairs_reader``), cut
  into aligned patches (the LQ crop at the HQ crop's position / scale), shards reshuffled
  every pass. The pairs' own scale must be one of ``scales``.
"""
from __future__ import annotations

import torch

from operators.degradations import sample_degradation
from pipelines.training.data import PatchSampler, load_images

Pair = tuple[torch.Tensor, torch.Tensor]


class DegradedPatches:
    def __init__(self, data: str, degradation: dict, scales: list[int], patch: int, batch_size: int,
                 generator: torch.Generator, limit_images: int | None = None):
        self.patches = PatchSampler(load_images(data, limit=limit_images), patch, batch_size, generator)
        self.spec, self.scales, self.g = dict(degradation), list(scales), generator

    def sample(self) -> Pair:
        hq = self.patches.sample()
        scale = self.scales[int(torch.randint(len(self.scales), (1,), generator=self.g))]
        spec = {**self.spec, "scale": scale}
        name = spec.pop("name")
        lq = []
        for x in hq.split(1):
            op = sample_degradation(name, self.g, tuple(x.shape), **spec)
            lq.append(op.measure(x, self.g).clamp(0, 1))
        return hq, torch.cat(lq)


class ParquetPatches:
    def __init__(self, uri: str, scales: list[int], patch: int, batch_size: int, generator: torch.Generator,
                 seed: int = 0):
        from pipelines.pairs_reader import EndlessPairs

        self.pairs = EndlessPairs(uri, seed)
        self.scales, self.patch, self.batch_size, self.g = list(scales), patch, batch_size, generator

    def _crop(self, it: dict) -> Pair:
        hq, lq = it["hq"], it["lq"]
        s = hq.shape[-1] // lq.shape[-1]
        if s not in self.scales or hq.shape[-2] != lq.shape[-2] * s:
            raise ValueError(f"pair {it['id']}: HQ {tuple(hq.shape)} vs LQ {tuple(lq.shape)} is not one of the "
                             f"training scales {self.scales}")
        p = self.patch
        if min(hq.shape[-2:]) < p:
            raise ValueError(f"pair {it['id']}: HQ {tuple(hq.shape)} is smaller than patch {p}")
        top = int(torch.randint((hq.shape[-2] - p) // s + 1, (1,), generator=self.g)) * s
        left = int(torch.randint((hq.shape[-1] - p) // s + 1, (1,), generator=self.g)) * s
        return (hq[:, top:top + p, left:left + p],
                lq[:, top // s:(top + p) // s, left // s:(left + p) // s])

    def sample(self) -> Pair:
        pairs = [self._crop(self.pairs.next()) for _ in range(self.batch_size)]
        shapes = {tuple(lq.shape) for _, lq in pairs}
        if len(shapes) > 1:  # mixed scales in one output: keep the first scale's pairs
            keep = tuple(pairs[0][1].shape)
            pairs = [p for p in pairs if tuple(p[1].shape) == keep]
        return torch.stack([h for h, _ in pairs]), torch.stack([lq for _, lq in pairs])


def pair_source(cfg: dict, generator: torch.Generator) -> DegradedPatches | ParquetPatches:
    """The source a train-prior config with a paired model names (``pairs`` wins over ``data``)."""
    if cfg.get("pairs"):
        return ParquetPatches(cfg["pairs"], cfg["scales"], cfg["patch"], cfg["batch_size"], generator, cfg["seed"])
    return DegradedPatches(cfg["data"], cfg["degradation"], cfg["scales"], cfg["patch"], cfg["batch_size"],
                           generator, cfg.get("limit_images"))
