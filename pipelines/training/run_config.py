"""The keys every training job shares (train-prior and its paired models, train-inn,
train-unfolded): what it reads, how long and how it runs, where it checkpoints and reports.
Each job's config subclasses :class:`TrainRunConfig`, adds its model's keys and sets its own
defaults (a field given again in a subclass keeps its place and takes the new default)."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.sections import MlflowConfig, RayConfig


@dataclass(frozen=True, kw_only=True)
class TrainRunConfig:
    """``data``: a folder of images (pairs or patches drawn on the fly); ``pairs``: a synth-pairs
    output instead (wins over ``data``); ``max_minutes``: a wall-clock budget per run (the
    learning rate's cosine spans it); ``resume``: continue from ``checkpoint_dir``'s latest
    checkpoint; ``num_workers`` x ``batch_size`` crops per step (``use_gpu``: one GPU each)."""

    job: str
    data: str = "../shared/data/train/BSDS400_color"
    pairs: str | None = None
    limit_images: int | None = None
    patch: int = 64
    batch_size: int = 16
    steps: int = 1000
    lr: float = 2e-4
    warmup_steps: int = 20
    output: str
    checkpoint_dir: str
    checkpoint_every: int = 50
    log_every: int = 10
    resume: bool = True
    max_minutes: float | None = None
    seed: int = 0
    num_workers: int = 1
    use_gpu: bool = False
    torch_threads: int | None = None
    ray: RayConfig = field(default_factory=lambda: RayConfig(actors=1))
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def validate_run(self) -> None:
        """The shared keys: finite numbers, counts >= 1, positive rates and budget, the ray and
        mlflow sections. Raises pipelines.config.ConfigError naming the key."""
        from pipelines.config import to_dict
        from pipelines.validation import check_at_least, check_finite, check_positive

        check_finite(to_dict(self))
        for key, low in (("steps", 1), ("batch_size", 1), ("warmup_steps", 0), ("checkpoint_every", 1), ("log_every", 1), ("num_workers", 1),
                         ("limit_images", 1), ("torch_threads", 1)):
            check_at_least(key, getattr(self, key), low, optional=key in ("limit_images", "torch_threads"))
        for key in ("lr", "max_minutes"):
            check_positive(key, getattr(self, key), optional=key == "max_minutes")
        self.ray.validate("ray")
        self.mlflow.validate("mlflow")
