"""LPIPS, the learned perceptual distance (Zhang et al., CVPR 2018), version 0.1.

d(x, ref) = sum_k mean_{h,w} || w_k * (f_k(x) - f_k(ref)) ||^2 over unit-normalised
(channel-wise) backbone activations f_k (Eq. 1). Two weight files: the per-layer linear
weights w_k (``lin{k}.model.1.weight``, shipped in lpips_v0.1/) and an ImageNet backbone
(torchvision layout, safetensors or a plain torch state dict). Without a file the metric is
null (NaN) with the reason: never a value from an untrained network.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from operators.metrics.lpips_nets import CHANNELS, Backbone, Net

# LPIPS ScalingLayer: inputs in [-1, 1] are normalised like the ImageNet training data
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
ENV_LIN, ENV_BACKBONE = "RESTORAY_LPIPS_LIN", "RESTORAY_LPIPS_BACKBONE"


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat tensor dict from .safetensors, or from a torch file with weights_only=True."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class LPIPS(nn.Module):
    """The LPIPS network. forward(x, ref): (B, 3, H, W) in [0, 1] -> (B,)."""

    def __init__(self, net: Net = "alex"):
        super().__init__()
        self.backbone = Backbone(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @property
    def net(self) -> str:
        return self.backbone.net

    def load_lin(self, state: dict[str, torch.Tensor]) -> None:
        """Linear layers from the official v0.1 keys ``lin{k}.model.1.weight`` (1, C_k, 1, 1)."""
        keys = [f"lin{k}.model.1.weight" for k in range(len(self.lins))]
        if set(state) != set(keys):
            raise ValueError(f"{self.net} LPIPS expects keys {keys[0]} .. {keys[-1]}, got {sorted(state)}")
        self.lins.load_state_dict({f"{k}.weight": state[key] for k, key in enumerate(keys)})

    def load_backbone(self, state: dict[str, torch.Tensor]) -> None:
        """Backbone weights in torchvision layout (``features.N.*`` or bare ``N.*``; classifier ignored)."""
        feats = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        self.backbone.features.load_state_dict(feats)

    @classmethod
    def from_paths(
        cls, net: Net = "alex", lin_path: str | Path | None = None, backbone_path: str | Path | None = None
    ) -> tuple[LPIPS | None, str | None]:
        """(model, None) when both weight files load, else (None, why)."""
        missing = [
            f"no {what} weights configured" if p is None else f"{what} weights not found at {p}"
            for what, p in (("ImageNet backbone", backbone_path), ("linear-layer", lin_path))
            if p is None or not Path(p).is_file()
        ]
        if missing:
            return None, f"LPIPS ({net}) unavailable: " + "; ".join(missing)
        model = cls(net)
        try:
            model.load_lin(load_state_dict(lin_path))
            model.load_backbone(load_state_dict(backbone_path))
        except (RuntimeError, ValueError, KeyError, OSError) as e:
            return None, f"LPIPS ({net}) unavailable: could not load weights: {e}"
        return model, None

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if x.shape != ref.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS expects two (B, 3, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(ref.shape)}"
            )
        z = (torch.cat([x, ref]) * 2 - 1 - self.shift) / self.scale
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for f, lin in zip(self.backbone(z), self.lins):
            f = f / (f.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fx, fr = f.chunk(2)
            total = total + lin((fx - fr).square()).mean(dim=(1, 2, 3))
        return total


@dataclass
class LPIPSMetric:
    """LPIPS as a metric callable; loads lazily; NaN per image with ``reason`` when weights are absent.

    Paths default to the environment variables RESTORAY_LPIPS_LIN / RESTORAY_LPIPS_BACKBONE.
    """

    net: Net = "alex"
    lin_path: str | None = None
    backbone_path: str | None = None
    _loaded: tuple[LPIPS | None, str | None] | None = field(default=None, init=False, repr=False)

    def load(self) -> tuple[LPIPS | None, str | None]:
        if self._loaded is None:
            lin = self.lin_path or os.environ.get(ENV_LIN)
            backbone = self.backbone_path or os.environ.get(ENV_BACKBONE)
            self._loaded = LPIPS.from_paths(self.net, lin, backbone)
        return self._loaded

    @property
    def reason(self) -> str | None:
        """Why the metric is null, or None when it is available."""
        return self.load()[1]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        model, _ = self.load()
        if model is None:
            return torch.full((x.shape[0],), float("nan"), device=x.device)
        return model.to(x.device)(x.float(), ref.float())
