"""Training triples (x0, y, operator) for the UD2M unfolding: drawn on the fly from an operator
family on random crops, or read back from synth-pairs Parquet shards.

A batch is a list of groups ``(x0 (b, C, H, W), y (b, C, h, w), degradation)``: the data step
runs the operator's prox, so images in one group share one operator. On the fly, a batch is
one group of ``batch_size`` crops with one operator drawn from the family (the UD2M "general"
model samples its operator per batch too); from Parquet, every pair is its own group.
"""
from __future__ import annotations

import torch

from operators.degradations import build_degradation, sample_degradation
from operators.degradations.base import Degradation
from operators.degradations.estimated import WithEstimate
from operators.estimators import build_estimator
from pipelines.training.data import PatchSampler, load_images

Group = tuple[torch.Tensor, torch.Tensor, Degradation]


def sample_operator(specs: list[dict], noise_sigma: tuple[float, float], generator: torch.Generator,
                    shape: tuple[int, ...]) -> Degradation:
    """One operator of the family: a spec picked uniformly (its free parameters drawn by the
    family's ``sample``: a Gaussian blur without ``sigma`` gets sigma_x, sigma_y ~ U[0.5, 3] px
    and a random angle), Gaussian noise sigma ~ U[noise_sigma], bound to ``shape``."""
    i = int(torch.randint(len(specs), (1,), generator=generator))
    lo, hi = noise_sigma
    sigma = lo + (hi - lo) * float(torch.rand(1, generator=generator, dtype=torch.float64))
    spec = {**specs[i], "noise_sigma": sigma}
    return sample_degradation(spec.pop("name"), generator, shape, **spec)


def require_exact_prox(op: Degradation, where: str) -> Degradation:
    """Training backpropagates through the data step: only closed-form proxes carry gradients."""
    if not op.exact_prox:
        raise ValueError(f"train-unfolded needs operators with a closed-form prox; {where} has degradation "
                         f"{op.name!r}, which has none")
    return op


class FamilyBatches:
    """On-the-fly batches: random crops (flips, rot90) of the images under ``data``, one operator
    of the family per batch, y = A x0 + n; deterministic given ``generator``. ``estimator``: a
    learned start (operators/estimators) every operator is wrapped with, as a solver's ``init``."""

    def __init__(self, data: str, specs: list[dict], noise_sigma: tuple[float, float], patch: int,
                 batch_size: int, generator: torch.Generator, limit_images: int | None = None, estimator=None):
        self.sampler = PatchSampler(load_images(data, limit=limit_images), patch, batch_size, generator)
        self.specs, self.noise_sigma, self.g, self.estimator = specs, tuple(noise_sigma), generator, estimator

    def next(self) -> list[Group]:
        x0 = self.sampler.sample()
        op = sample_operator(self.specs, self.noise_sigma, self.g, tuple(x0.shape))
        op = WithEstimate(op, self.estimator) if self.estimator is not None else op
        return [(x0, op.measure(x0, self.g), require_exact_prox(op, "the family"))]


class ParquetBatches:
    """Pairs from synth-pairs shards (``pipelines.pairs_reader``), ``batch_size`` per batch, each
    with the operator rebuilt from its params; shards reshuffled every pass, endlessly."""

    def __init__(self, uri: str, batch_size: int, seed: int):
        from pipelines.pairs_reader import EndlessPairs

        self.pairs, self.batch_size = EndlessPairs(uri, seed), batch_size

    @property
    def epoch(self) -> int:
        """Passes over the shards completed so far."""
        return self.pairs.epoch

    def next(self) -> list[Group]:
        groups = []
        for _ in range(self.batch_size):
            it = self.pairs.next()
            op = require_exact_prox(build_degradation(it["params"]), f"pair {it['id']}")
            groups.append((it["hq"][None], it["lq"][None], op))
        return groups


def batch_source(cfg: dict, generator: torch.Generator,
                 batch_size: int | None = None) -> FamilyBatches | ParquetBatches:
    """The source a train-unfolded config names (``pairs`` wins over ``data``)."""
    b = batch_size or cfg["batch_size"]
    if cfg.get("pairs"):
        return ParquetBatches(cfg["pairs"], b, cfg["seed"])
    return FamilyBatches(cfg["data"], cfg["operators"], tuple(cfg["noise_sigma"]), cfg["patch"], b, generator,
                         cfg.get("limit_images"), build_estimator(cfg.get("init")))
