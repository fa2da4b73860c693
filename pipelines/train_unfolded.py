"""Job `train-unfolded`: train a UD2M unfolding (LoRA on the prior + per-step scalars) on Ray
Train's TorchTrainer; checkpoints resume; loss curve, before/after PSNR and a sample grid go to
MLflow; the unfolding is written as safetensors (tied to its base prior) with a model card stub."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from pipelines.config import ConfigError, to_dict
from pipelines.training.run_config import TrainRunConfig

FAMILY = [{"name": "blur", "kind": "gaussian"}, {"name": "sr", "scale": 2}, {"name": "sr", "scale": 4},
          {"name": "denoise"}]  # issue 11: Gaussian blur sigma 0.5-3 px, bicubic x2 / x4, noise
WIDEN = ("lora_rank", "lora_alpha")  # the 'unfolding' keys that may differ from init_unfolding's


@dataclass(frozen=True, kw_only=True)
class TrainUnfoldedConfig(TrainRunConfig):
    """The run keys (data, pairs, steps, checkpoints, Ray, MLflow): TrainRunConfig; here the
    unfolding's: its base prior, the operator family and noise range pairs are drawn from, the
    unfolded sampler's starting values and the loss."""

    job: str = "train-unfolded"
    prior: dict = field(default_factory=lambda: {"name": "embedded"})
    operators: list[dict] = field(default_factory=lambda: [dict(s) for s in FAMILY])
    noise_sigma: list[float] = field(default_factory=lambda: [0.0, 0.05])
    unfolding: dict = field(default_factory=dict)      # UnfoldingConfig fields (operators/solvers/unfolded.py)
    nfe: int = 6                                       # N = nfe // inner_steps outer steps while training
    loss: Literal["l1", "l2"] = "l1"
    grad_checkpoint: bool = True
    batch_size: int = 4
    lr_scalars: float = 1e-2                           # log step sizes / noise-level scales (lr: LoRA adapters)
    val_images: int = 4
    output: str = "weights/embedded_ud2m.safetensors"
    checkpoint_dir: str = "runs/train-unfolded/checkpoints"
    init_unfolding: str | None = None                  # warm start from a trained unfolding file
    expert: str | None = None                          # fine-tune init_unfolding's expert for this operator family
    init: dict | None = None                           # a learned start {name: imdn, weights: PATH}, as a solver's

    def operator_families(self) -> list[tuple[dict, str | None]]:
        """(spec, its preset family) for each of ``operators``, as the ud2m solver will see it:
        wrapped in the ``init`` estimator where one is given (family ``refine``), None where
        that estimator refuses the operator."""
        from operators.degradations import build_degradation
        from operators.degradations.estimated import WithEstimate
        from operators.estimators import build_estimator
        from operators.solvers.presets import task_family

        est, out = build_estimator(self.init), []
        for spec in self.operators:
            op = build_degradation(spec)
            try:
                out.append((dict(spec), task_family(WithEstimate(op, est) if est else op)))
            except ValueError:  # not an operator this estimator was trained for
                out.append((dict(spec), None))
        return out

    def trained_operators(self) -> list[dict]:
        """The operators trained on: those of ``operators`` the ``init`` estimator serves (all
        without one), and with ``expert`` only those of its family."""
        return [spec for spec, family in self.operator_families()
                if family is not None and (not self.expert or family == self.expert)]

    def unfolding_config(self):
        """The UnfoldingConfig trained: ``init_unfolding``'s own when set (its ``expert``'s where it
        has one), with the LoRA rank and alpha ``unfolding`` gives (a wider adapter starts as the
        file's: lora.widen_lora_state; any other ``unfolding`` key must agree with the file), else
        ``unfolding``'s."""
        from operators.solvers.unfolded import UnfoldingConfig

        if not self.init_unfolding:
            return UnfoldingConfig(**self.unfolding)
        meta = self._init_meta()
        wider = {k: self.unfolding[k] for k in WIDEN if k in self.unfolding}
        return replace(UnfoldingConfig.from_json(meta["config"]), **wider)

    def _init_meta(self) -> dict[str, str]:
        """The metadata ``init_unfolding``'s tensors load with (its ``expert``'s layout, if any)."""
        from operators.solvers.unfolding_experts import select
        from operators.solvers.unfolding_file import read_unfolding

        return select(*read_unfolding(self.init_unfolding), self.expert)[1]

    def validate(self) -> None:
        from pipelines.prior_files import check_prior_files
        from pipelines.registry_check import check_degradation, check_prior
        from pipelines.validation import check_at_least, check_positive

        self.validate_run()
        check_at_least("val_images", self.val_images, 0)
        check_positive("lr_scalars", self.lr_scalars)
        if self.patch < 16 or self.patch % 8:
            raise ConfigError(f"config key 'patch': a multiple of 8 >= 16 (SR x4 and the UNet), got {self.patch}")
        check_prior(self.prior, "prior")
        check_prior_files(self.prior, "prior")
        self._check_family(check_degradation)
        self._check_unfolding()
        self._check_expert()

    def _check_expert(self) -> None:
        if self.init is not None:
            from operators.estimators import build_estimator

            if self.pairs:
                raise ConfigError("config keys 'init' and 'pairs': a learned start applies to pairs drawn on "
                                  "the fly from 'operators'; drop one")
            try:
                build_estimator(self.init)
            except (ValueError, OSError) as e:
                raise ConfigError(f"config key 'init': {e}") from None
            if not self.trained_operators() and self.expert is None:
                raise ConfigError(f"config key 'init': {self.init['name']} serves none of 'operators'")
        if self.expert is None:
            return
        if self.pairs:
            raise ConfigError("config keys 'expert' and 'pairs': an expert trains on its family's members of "
                              "'operators', drawn on the fly; drop 'pairs'")
        if not self.init_unfolding:
            raise ConfigError("config key 'expert': an expert is fine-tuned from a trained unfolding; "
                              "set 'init_unfolding' to it (the output holds it plus the expert)")
        if not self.trained_operators():
            have = sorted({family for _, family in self.operator_families() if family})
            raise ConfigError(f"config key 'expert': no operator in 'operators' is of family {self.expert!r}; "
                              f"their families: {', '.join(have)}")

    def _check_family(self, check_degradation) -> None:
        from operators.degradations import build_degradation

        lo_hi = self.noise_sigma
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
            raise ConfigError(f"config key 'noise_sigma': [low, high] with 0 <= low <= high, got {lo_hi}")
        if not self.operators:
            raise ConfigError("config key 'operators': give at least one degradation spec")
        for i, spec in enumerate(self.operators):
            check_degradation(spec, f"operators[{i}]")
            try:
                op = build_degradation(spec)
                op.output_shape((1, 3, self.patch, self.patch))
            except ValueError as e:
                raise ConfigError(f"config key 'operators[{i}]' with patch {self.patch}: {e}") from None
            if not op.exact_prox:
                raise ConfigError(f"config key 'operators[{i}]': {spec['name']!r} has no closed-form prox; "
                                  "training backpropagates through the data step")

    def _check_unfolding(self) -> None:
        from operators.solvers.unfolded import UnfoldingConfig

        try:
            given = UnfoldingConfig(**self.unfolding)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config key 'unfolding': {e}") from None
        k = given.inner_steps
        if self.init_unfolding:
            try:
                saved = UnfoldingConfig.from_json(self._init_meta()["config"])
            except (OSError, ValueError) as e:
                raise ConfigError(f"config key 'init_unfolding': {e}") from None
            start = self.unfolding_config()
            if set(self.unfolding) - set(WIDEN) and given.but_lora_size() != saved.but_lora_size():
                raise ConfigError(f"config keys 'unfolding' and 'init_unfolding': the file was trained as "
                                  f"{saved.to_json()}, the config gives {given.to_json()}; when continuing a "
                                  "file, 'unfolding' may only widen its LoRA (lora_rank, lora_alpha)")
            if start.lora_rank < saved.lora_rank:
                raise ConfigError(f"config key 'unfolding.lora_rank': {start.lora_rank} is below the rank "
                                  f"{saved.lora_rank} of init_unfolding's adapters; it can only grow")
            k = start.inner_steps
        if self.nfe < k:
            raise ConfigError(f"config key 'nfe': at least unfolding.inner_steps = {k}, got {self.nfe}")


@dataclass
class TrainUnfoldedSummary:
    output: str
    steps: int
    seconds: float
    final_loss: float
    validation: dict = field(default_factory=dict)
    run_id: str | None = None
    tracking_uri: str | None = None

    def table(self) -> str:
        lines = [f"restoray train-unfolded: {self.steps} steps in {self.seconds:.0f} s, "
                 f"final loss {self.final_loss:.5f}",
                 f"  unfolding: {self.output}"]
        if self.validation:
            lines.append("  validation PSNR: " + ", ".join(f"{k} {v:.2f} dB" for k, v in self.validation.items()))
        if self.run_id:
            lines.append(f"  mlflow:   run {self.run_id} at {self.tracking_uri}")
        return "\n".join(lines)


def run(cfg: TrainUnfoldedConfig) -> TrainUnfoldedSummary:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from operators.estimators import build_estimator
    from pipelines.ray_runtime import init_ray
    from pipelines.tracking import log_run
    from pipelines.training.unfolded_loop import train_unfolded_loop
    from pipelines.training.unfolded_report import validate_unfolding, write_card

    loop_cfg = asdict(cfg)
    loop_cfg["data_label"] = cfg.data  # as written in the config, for the metadata
    loop_cfg["unfolding"] = json.loads(cfg.unfolding_config().to_json())
    loop_cfg["operators"] = cfg.trained_operators()
    for key in ("data", "pairs", "output", "checkpoint_dir", "init_unfolding"):
        if loop_cfg[key] and "://" not in loop_cfg[key]:
            loop_cfg[key] = os.path.abspath(loop_cfg[key])
    if cfg.init:  # resolved here (default weights, absolute path): the workers run elsewhere
        loop_cfg["init"] = {"name": cfg.init["name"], "weights": os.path.abspath(build_estimator(cfg.init).weights)}
    if loop_cfg["prior"].get("weights"):  # the workers run elsewhere
        loop_cfg["prior"] = {**loop_cfg["prior"], "weights": os.path.abspath(loop_cfg["prior"]["weights"])}
    init_ray(cfg.ray)
    cpus = max(1, int(cfg.ray.num_cpus or os.cpu_count() or 1) // max(1, cfg.num_workers))
    scaling = ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                            resources_per_worker={"CPU": cpus} if not cfg.use_gpu else None)
    loop_cfg["torch_threads"] = cfg.torch_threads or (cpus if not cfg.use_gpu else None)
    storage = Path(loop_cfg["checkpoint_dir"]).parent / "ray"
    t0 = time.perf_counter()
    TorchTrainer(train_unfolded_loop, train_loop_config=loop_cfg, scaling_config=scaling,
                 run_config=RunConfig(name="train-unfolded", storage_path=str(storage))).fit()
    history = json.loads((Path(loop_cfg["checkpoint_dir"]) / "latest" / "history.json").read_text())
    summary = TrainUnfoldedSummary(cfg.output, history[-1]["step"], time.perf_counter() - t0, history[-1]["loss"])
    history_json = json.dumps(history).encode()
    Path(loop_cfg["output"] + ".history.json").write_bytes(history_json)
    summary.validation, grid = validate_unfolding(loop_cfg)
    write_card(loop_cfg["output"], summary.validation)
    logged = log_run(cfg.mlflow, "train-unfolded", to_dict(cfg),
                     {"final_loss": summary.final_loss, "steps": summary.steps, "seconds": summary.seconds,
                      **{f"val_psnr_{k}": v for k, v in summary.validation.items()}},
                     {"history.json": history_json, **({"samples.png": grid} if grid else {})},
                     tags={"job": cfg.job}, metric_series={"loss": [h["loss"] for h in history]})
    if logged:
        summary.run_id, summary.tracking_uri = logged
    return summary
