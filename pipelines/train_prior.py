"""Job `train-prior`: train an embedded prior (pixel EDM UNet, latent codec, or latent EDM UNet)
on Ray Train's TorchTrainer; checkpoints resume, the loss curve goes to MLflow.

The blind methods' networks train here too, on (HQ, LQ) pairs (``model: inn | latent_inn |
conditional | irsde``; pipelines/training/paired_objective.py): pairs degraded on the fly by
``degradation`` (the Real-ESRGAN chain) at the ``scales``, or read from a synth-pairs output
(``pairs``). `train-inn` is this job with ``model: inn`` as its default."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.config import ConfigError, to_dict
from pipelines.training.run_config import TrainRunConfig


@dataclass(frozen=True, kw_only=True)
class TrainPriorConfig(TrainRunConfig):
    """The run keys (data, pairs, steps, checkpoints, Ray, MLflow): TrainRunConfig; here the
    model's. Paired models draw LQ from ``degradation`` at one of ``scales`` per batch."""

    job: str = "train-prior"
    model: Literal["pixel", "codec", "latent", "inn", "latent_inn", "conditional", "irsde"] = "pixel"
    degradation: dict = field(default_factory=lambda: {"name": "realesrgan"})  # paired: LQ made on the fly
    scales: list[int] = field(default_factory=lambda: [4])  # paired: LQ scales (one drawn per batch)
    latent_prior: dict | None = None              # latent_inn: the latent prior whose latent space it learns
    grey: bool = False
    steps: int = 4000
    lr: float = 5e-4
    warmup_steps: int = 200
    ema: float = 0.999
    p_mean: float = -1.2
    p_std: float = 1.2
    net: dict = field(default_factory=dict)       # EDMUNetConfig / AutoencoderConfig fields
    codec: str | None = None                      # model: latent -> the trained codec's weights
    init_weights: str | None = None               # start (model and EMA) from these weights (fine-tune)
    teacher: dict | None = None                   # a prior spec ({name: ffdnet, weights: PATH}) to distil
    teacher_weight: float = 1.0                   # weight of ||D - teacher||^2 inside the teacher's sigma range
    output: str = "weights/embedded_pixel.safetensors"
    checkpoint_dir: str = "runs/train-prior/checkpoints"
    checkpoint_every: int = 250
    log_every: int = 50

    def validate(self) -> None:
        from pipelines.prior_files import check_prior_files, check_weights_file
        from pipelines.validation import check_positive

        self.validate_run()
        if self.model == "latent" and not self.codec:
            raise ConfigError("config key 'codec': model: latent needs the trained codec's weights path")
        if self.patch < 8:
            raise ConfigError(f"config key 'patch': at least 8, got {self.patch}")
        check_positive("p_std", self.p_std)
        if not 0 <= self.ema < 1:
            raise ConfigError(f"config key 'ema': must be in [0, 1), got {self.ema}")
        for key in ("init_weights", "codec"):
            if getattr(self, key):
                check_weights_file(getattr(self, key), key)
        if self.teacher is not None and "name" in self.teacher:
            check_prior_files(self.teacher, "teacher", require=False)
        self._check_paired()
        if self.teacher is not None and (self.model != "pixel" or "name" not in self.teacher):
            raise ConfigError("config key 'teacher': a prior spec with a 'name', for model: pixel only")
        if self.teacher_weight < 0:
            raise ConfigError(f"config key 'teacher_weight': must be >= 0, got {self.teacher_weight}")


    def _check_paired(self) -> None:
        """Paired models: the degradation spec, scales, and one loss on a tiny batch of each scale,
        so a model that cannot train on these pairs fails here, naming the key."""
        from pipelines.prior_files import check_prior_files
        from pipelines.registry_check import check_degradation
        from pipelines.training.paired_objective import PAIRED, build_paired

        if self.model not in PAIRED:
            return
        check_degradation(self.degradation, "degradation")
        if self.latent_prior is not None:
            from pipelines.registry_check import check_prior

            check_prior(self.latent_prior, "latent_prior")
            check_prior_files(self.latent_prior, "latent_prior")
        if not self.scales or any(s not in (1, 2, 4) for s in self.scales):
            raise ConfigError(f"config key 'scales': a list of LQ scales from 1, 2, 4, got {self.scales}")
        if self.patch % (4 * max(self.scales)):
            raise ConfigError(f"config key 'patch': a multiple of {4 * max(self.scales)} for scales {self.scales}")
        import torch

        from operators.degradations import sample_degradation

        try:
            obj = build_paired({**to_dict(self), "patch": 16 * max(self.scales)})
            g = torch.Generator().manual_seed(0)
            for s in sorted(set(self.scales)):
                hq = torch.rand(1, 3, 16 * max(self.scales), 16 * max(self.scales), generator=g)
                spec = {**self.degradation, "scale": s}
                op = sample_degradation(spec.pop("name"), g, tuple(hq.shape), **spec)
                obj.loss((hq, op.measure(hq, g).clamp(0, 1)), g)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ConfigError(f"config keys 'model: {self.model}' / 'net' / 'scales' {self.scales}: {e}") from None


@dataclass(frozen=True, kw_only=True)
class TrainINNConfig(TrainPriorConfig):
    """`train-inn`: train-prior with the PixelINN of LatentINDIGO as its default model."""

    job: str = "train-inn"
    model: Literal["pixel", "codec", "latent", "inn", "latent_inn", "conditional", "irsde"] = "inn"
    output: str = "weights/blind_pixel_inn.safetensors"
    checkpoint_dir: str = "runs/train-inn/checkpoints"


@dataclass
class TrainSummary:
    output: str
    steps: int
    seconds: float
    final_loss: float
    run_id: str | None = None
    tracking_uri: str | None = None

    def table(self) -> str:
        lines = [f"restoray train-prior: {self.steps} steps in {self.seconds:.0f} s, "
                 f"final loss {self.final_loss:.5f}", f"  weights:  {self.output}"]
        if self.run_id:
            lines.append(f"  mlflow:   run {self.run_id} at {self.tracking_uri}")
        return "\n".join(lines)


def run(cfg: TrainPriorConfig) -> TrainSummary:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipelines.ray_runtime import init_ray
    from pipelines.tracking import log_run

    loop_cfg = asdict(cfg)
    loop_cfg["data_label"] = cfg.data  # as written in the config, for the weights' metadata
    for key in ("data", "pairs", "output", "checkpoint_dir", "codec", "init_weights"):
        if loop_cfg[key] and "://" not in loop_cfg[key]:  # local paths: the workers run elsewhere
            loop_cfg[key] = os.path.abspath(loop_cfg[key])
    if (loop_cfg["teacher"] or {}).get("weights"):  # the workers run elsewhere
        loop_cfg["teacher"] = {**loop_cfg["teacher"], "weights": os.path.abspath(loop_cfg["teacher"]["weights"])}
    init_ray(cfg.ray)
    from pipelines.training.loop import train_loop

    cpus = max(1, int(cfg.ray.num_cpus or os.cpu_count() or 1) // max(1, cfg.num_workers))
    scaling = ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                            resources_per_worker={"CPU": cpus} if not cfg.use_gpu else None)
    loop_cfg["torch_threads"] = cfg.torch_threads or (cpus if not cfg.use_gpu else None)
    storage = Path(loop_cfg["checkpoint_dir"]).parent / "ray"
    t0 = time.perf_counter()
    trainer = TorchTrainer(train_loop, train_loop_config=loop_cfg, scaling_config=scaling,
                           run_config=RunConfig(name=f"train-{cfg.model}", storage_path=str(storage)))
    trainer.fit()
    history = json.loads((Path(loop_cfg["checkpoint_dir"]) / "latest" / "history.json").read_text())
    summary = TrainSummary(cfg.output, history[-1]["step"], time.perf_counter() - t0, history[-1]["loss"])
    history_json = json.dumps(history).encode()
    Path(loop_cfg["output"] + ".history.json").write_bytes(history_json)
    logged = log_run(cfg.mlflow, f"train-{cfg.model}", to_dict(cfg),
                     {"final_loss": summary.final_loss, "steps": summary.steps, "seconds": summary.seconds},
                     {"history.json": history_json}, tags={"job": cfg.job},
                     metric_series={"loss": [h["loss"] for h in history]})
    if logged:
        summary.run_id, summary.tracking_uri = logged
    return summary
