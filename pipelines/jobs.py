"""The job kinds `restoray run` knows: name -> (config class, run function, description)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    module: str        # pipelines.<module> defines `config_class` and `run`
    config_class: str
    description: str

    def load(self):
        mod = importlib.import_module(f"pipelines.{self.module}")
        return getattr(mod, self.config_class), mod.run


JOBS: dict[str, JobKind] = {
    "restore-images": JobKind(
        "restore_images", "RestoreImagesConfig",
        "restore every image under an input URI (optionally degrading clean images first) with a "
        "diffusion solver and prior; writes results/errors Parquet, restored PNGs, comparison "
        "grids and an MLflow run"),
    "train-prior": JobKind(
        "train_prior", "TrainPriorConfig",
        "train an embedded prior (pixel EDM UNet, latent codec or latent EDM UNet) on Ray Train; "
        "resumable checkpoints, safetensors weights, loss curve in MLflow"),
    "synth-pairs": JobKind(
        "synth_pairs", "SynthPairsConfig",
        "synthesize training pairs: random crops of clean images, a (random) degradation per crop; "
        "HQ/LQ PNG bytes + params JSON as Parquet shards, deterministic by seed, resumable"),
    "evaluate": JobKind(
        "evaluate", "EvaluateConfig",
        "benchmark a grid of datasets x tasks x methods (diffusion solvers and classical baselines: "
        "pinv, BM3D, TV, Wiener) on the same degraded inputs; results/errors Parquet, a markdown "
        "table (results.md), comparison grids and an MLflow run"),
}
