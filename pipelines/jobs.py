"""The job kinds `restoray run` knows: name -> (config class, run function, description).

Direct references: importing this imports every job module, so job modules import Ray,
torch, numpy and pyarrow inside functions only (`restoray --help` reads this table).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines import evaluate, restore_images, restore_video, synth_pairs, train_prior, train_unfolded


@dataclass(frozen=True)
class JobKind:
    config: type               # a frozen dataclass; `validate()` runs at load
    run: Callable[[Any], Any]  # run(cfg) -> a summary with .table()
    description: str


JOBS: dict[str, JobKind] = {
    "restore-images": JobKind(
        restore_images.RestoreImagesConfig, restore_images.run,
        "restore every image under an input URI (optionally degrading clean images first) with a "
        "diffusion solver and prior; writes results/errors Parquet, restored PNGs, comparison "
        "grids and an MLflow run"),
    "restore-video": JobKind(
        restore_video.RestoreVideoConfig, restore_video.run,
        "restore every clip under an input URI (optionally degrading it first): segments on the actor "
        "pool, windows of frames coupled in time (langevin_video) or frame by frame, re-encoded with "
        "the source's timing and audio; clips/windows/errors Parquet, comparison videos, MLflow run"),
    "train-prior": JobKind(
        train_prior.TrainPriorConfig, train_prior.run,
        "train an embedded prior (pixel EDM UNet, latent codec or latent EDM UNet) or a blind method's "
        "network on pairs (model: conditional | irsde | inn | latent_inn) on Ray Train; resumable "
        "checkpoints, safetensors weights, loss curve in MLflow"),
    "train-inn": JobKind(
        train_prior.TrainINNConfig, train_prior.run,
        "train the invertible network (PixelINN, or LatentINN with model: latent_inn) of LatentINDIGO on "
        "Real-ESRGAN pairs made on the fly or read from synth-pairs Parquet; as train-prior otherwise"),
    "train-unfolded": JobKind(
        train_unfolded.TrainUnfoldedConfig, train_unfolded.run,
        "train a UD2M unfolding (LoRA + per-step Langevin parameters) of a prior on Ray Train, on pairs "
        "drawn from an operator family or read from synth-pairs Parquet; resumable checkpoints, "
        "safetensors unfolding + model card stub, loss curve and sample grid in MLflow"),
    "synth-pairs": JobKind(
        synth_pairs.SynthPairsConfig, synth_pairs.run,
        "synthesize training pairs: random crops of clean images, a (random) degradation per crop; "
        "HQ/LQ PNG bytes + params JSON as Parquet shards, deterministic by seed, resumable"),
    "evaluate": JobKind(
        evaluate.EvaluateConfig, evaluate.run,
        "benchmark a grid of datasets x tasks x methods (diffusion solvers and classical baselines: "
        "pinv, BM3D, TV, Wiener) on the same degraded inputs; results/errors Parquet, a markdown "
        "table (results.md), comparison grids and an MLflow run"),
}
