"""Run a training job's loop in this process: Ray Train's local mode (ScalingConfig(num_workers=0)),
no worker actors, so a loop-level test costs seconds instead of a Ray Train start-up."""
from __future__ import annotations

from dataclasses import asdict

import torch


def fit_local(loop, cfg) -> None:
    """``loop`` on the job config ``cfg`` as its run() passes it, less what run() adds around it
    (Ray set-up, absolute paths: tmp_path already is, MLflow); one torch thread."""
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    loop_cfg = {**asdict(cfg), "data_label": cfg.data, "torch_threads": 1}
    torch.manual_seed(0)  # the networks initialise from the global RNG (fresh in each Ray worker)
    TorchTrainer(loop, train_loop_config=loop_cfg, scaling_config=ScalingConfig(num_workers=0)).fit()
