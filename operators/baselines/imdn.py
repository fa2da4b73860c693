"""Baseline `imdn`: the published IMDN x4 network alone (operators/estimators/imdn.py), a learned
regressor, not a classical method: the reference a solver started from it (``init: {name:
imdn}``) is compared with, to show what the prior and the data step add to it or take away.
Reports list it apart from the classical baselines (:data:`operators.baselines.LEARNED`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators.degradations.base import Degradation
from operators.estimators import build_estimator

APPLIES = ("sr",)


@dataclass(frozen=True)
class IMDNConfig:
    """``weights``: the published IMDN_x4.pth (None: ../shared/data/weights/IMDN_x4.pth)."""

    weights: str | None = None


def baseline_imdn(y: torch.Tensor, degradation: Degradation, *, config: IMDNConfig | None = None) -> torch.Tensor:
    """y (B, 3, h, w) -> x (B, 3, 4h, 4w); refuses any operator but x4 MATLAB-bicubic SR."""
    cfg = config or IMDNConfig()
    est = build_estimator({"name": "imdn", "weights": cfg.weights}, str(y.device))
    est.check(degradation)
    return est(y)
