"""DVDnet (Tassano, Delon & Veit, "DVDnet: A Fast Network for Deep Video Denoising", ICIP 2019):
a per-frame spatial denoiser, then a temporal denoiser on 5 motion-compensated frames.

Written from the layer description in ../shared/data/MANIFEST.md (weights/dvdnet/); the published
files (m-tassano/dvdnet, GPL-3.0-or-later) are read from where they lie, never copied here.

Pipeline of :meth:`DVDnet.denoise_video` (the repository's dvdnet.py, test_dvdnet.py):
1. every frame through the spatial stage, output clamped to [0, 1];
2. for each frame t, the frames t-2..t+2 of step 1 are warped onto frame t with optical flow
   estimated on their first (R) channel at 8 bits (:mod:`operators.video.flow`; DeepFlow as the
   authors, or DIS as an unevaluated faster substitute);
3. the temporal stage on the 5 aligned frames gives frame t, clamped to [0, 1].
Indices outside the clip are clamped to the first / last frame, as the repository's sliding
window does (``max(0, .)``, ``min(T - 1, .)``); ``edge="reflect"`` mirrors them instead.
Departures from the repository, all small: the aligned frames stay float (it stores them as
truncated uint8), warping replicates the border (it fills 0), and the 8-bit flow input is
rounded (it truncates). Odd H or W are reflect-padded by one row / column and cropped back.
Trained for sigma in [5, 55]/255: :meth:`DVDnet.denoise_video` refuses other values.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from operators.priors.base import Prior
from operators.priors.channels import apply_channels
from operators.priors.padding import crop_to, pad_to_multiple
from operators.priors.paths import shared_weights
from operators.video.flow import FlowMethod, estimate_flow, warp

SIGMA_MIN = 5 / 255  # the training range [5, 55] in 8-bit units
SIGMA_MAX = 55 / 255
RADIUS = 2  # 2 frames either side: the temporal stage takes 5
FILES = ("model_spatial.pth", "model_temp.pth")
Edge = Literal["clamp", "reflect"]


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    return [_conv(cin, cout, k, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _noise_map(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """sigma (B,) -> a constant (B, 3, h, w) map shaped like ``like``'s batch and size."""
    return sigma.to(like.dtype).view(-1, 1, 1, 1).expand(like.shape[0], 3, *like.shape[-2:])


class DVDnetSpatial(nn.Module):
    """x: (B, 3, H, W), H and W even; sigma: (B,) -> x - noise estimate.

    [noise map, 2x pixel-unshuffle of x] (15 ch) -> conv + ReLU -> 10 x (conv, BN, ReLU) ->
    conv to 12 -> 2x pixel-shuffle = the noise estimate. Keys ``conv_relu_bn.{0..32}``.
    """

    def __init__(self, width: int = 96, depth: int = 12):
        super().__init__()
        layers: list[nn.Module] = [_conv(15, width), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += _conv_bn_relu(width, width)
        layers.append(_conv(width, 12))
        self.conv_relu_bn = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        z = F.pixel_unshuffle(x, 2)
        return x - F.pixel_shuffle(self.conv_relu_bn(torch.cat([_noise_map(sigma, z), z], dim=1)), 2)


class DVDnetTemporal(nn.Module):
    """frames: (B, 15, H, W), 5 aligned RGB frames t-2 first, H and W even; sigma: (B,) ->
    the denoised centre frame (B, 3, H, W) (not a residual; unclamped).

    h = down_conv([noise map, frames]) (5x5 stride 2, BN, ReLU); out_conv(block_conv(h) +
    conv1x1(h)) -> 2x pixel-shuffle.
    """

    def __init__(self, frames: int = 2 * RADIUS + 1, width: int = 96, blocks: int = 4):
        super().__init__()
        self.down_conv = nn.Sequential(*_conv_bn_relu(3 * (frames + 1), width, k=5, stride=2))
        self.conv1x1 = nn.Conv2d(width, width, 1, bias=False)
        self.block_conv = nn.Sequential(*[m for _ in range(blocks) for m in _conv_bn_relu(width, width)])
        self.out_conv = nn.Sequential(*_conv_bn_relu(width, width), _conv(width, 12))

    def forward(self, frames: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h = self.down_conv(torch.cat([_noise_map(sigma, frames), frames], dim=1))
        return F.pixel_shuffle(self.out_conv(self.block_conv(h) + self.conv1x1(h)), 2)


def neighbours(t: int, length: int, edge: Edge = "clamp", radius: int = RADIUS) -> list[int]:
    """Frame indices t - radius .. t + radius inside [0, length): clamped or mirrored at the ends."""
    out = []
    for i in range(t - radius, t + radius + 1):
        if edge == "reflect" and length > 1:
            period = 2 * (length - 1)
            i = abs(i) % period
            i = period - i if i >= length else i
        out.append(min(max(i, 0), length - 1))
    return out


def check_sigma(sigma: float) -> float:
    if not SIGMA_MIN - 1e-6 <= sigma <= SIGMA_MAX + 1e-6:
        raise ValueError(f"DVDnet was trained for sigma in [5, 55]/255 (sigma is in [0, 1] units); "
                         f"got {sigma:.4g} = {sigma * 255:.3g}/255")
    return float(sigma)


class DVDnet(nn.Module):
    """The two stages and the alignment; ``flow`` picks the estimator, ``batch`` the frames per
    network call. Inference only: stays in eval mode. ``sigma_min``/``sigma_max``: the range it
    was trained on (the VideoDenoiser contract of operators.solvers.langevin_video)."""

    sigma_min = SIGMA_MIN
    sigma_max = SIGMA_MAX

    def __init__(self, spatial: DVDnetSpatial, temporal: DVDnetTemporal, flow: FlowMethod = "deepflow",
                 edge: Edge = "clamp", batch: int = 4):
        super().__init__()
        if flow not in ("deepflow", "dis") or edge not in ("clamp", "reflect") or batch < 1:
            raise ValueError(f"flow must be deepflow or dis, edge clamp or reflect, batch >= 1; "
                             f"got {flow!r}, {edge!r}, {batch}")
        self.spatial, self.temporal = spatial.requires_grad_(False), temporal.requires_grad_(False)
        self.flow, self.edge, self.batch = flow, edge, batch
        self.eval()

    def train(self, mode: bool = True) -> DVDnet:
        """Always eval: BatchNorm uses the published running statistics (inference only)."""
        return super().train(False)

    def denoise_frames(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The spatial stage alone: x (B, 3, H, W) any size, sigma (B,) -> (B, 3, H, W), unclamped."""
        xp, size = pad_to_multiple(x, 2)
        return crop_to(self.spatial(xp, sigma), size)

    def aligned(self, frames: np.ndarray, t: int) -> np.ndarray:
        """frames: (T, H, W, 3) float32 -> (H, W, 15): frames t-2..t+2 warped onto frame t."""
        ref, idx = frames[t], neighbours(t, len(frames), self.edge)
        done = {j: ref if j == t else warp(frames[j], estimate_flow(ref, frames[j], self.flow)) for j in set(idx)}
        return np.concatenate([done[j] for j in idx], axis=2)

    @torch.no_grad()
    def denoise_video(self, frames: torch.Tensor, sigma: float) -> torch.Tensor:
        """frames: (T, 3, H, W) in [0, 1], noisy with std ``sigma`` in [5, 55]/255 -> (T, 3, H, W)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"DVDnet takes RGB frames (T, 3, H, W), got {tuple(frames.shape)}")
        device = next(self.parameters()).device
        x, size = pad_to_multiple(frames.to(device, torch.float32), 2)
        s = torch.full((len(x),), check_sigma(sigma), device=device)
        spatial = torch.cat([self.spatial(x[i : i + self.batch], s[i : i + self.batch]).clamp(0, 1)
                             for i in range(0, len(x), self.batch)])
        spatial_np = spatial.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        out = []
        for i in range(0, len(x), self.batch):
            stack = np.stack([self.aligned(spatial_np, t) for t in range(i, min(i + self.batch, len(x)))])
            inp = torch.from_numpy(stack).permute(0, 3, 1, 2).to(device)
            out.append(self.temporal(inp, s[: len(inp)]).clamp(0, 1))
        return crop_to(torch.cat(out), size)


def weight_paths(folder_or_paths: str | Path | Sequence[str | Path] | None = None) -> tuple[Path, Path]:
    """A folder holding model_spatial.pth and model_temp.pth, or the two paths in that order;
    default ../shared/data/weights/dvdnet."""
    if folder_or_paths is None or isinstance(folder_or_paths, (str, Path)):
        folder = shared_weights("dvdnet") if folder_or_paths is None else Path(folder_or_paths)
        paths = (folder / FILES[0], folder / FILES[1])
    else:
        paths = tuple(Path(p) for p in folder_or_paths)
        if len(paths) != 2:
            raise ValueError(f"give a folder or the two files ({', '.join(FILES)}), got {len(paths)} paths")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"DVDnet weights not found: {p}; pass the folder holding {' and '.join(FILES)} "
                                    f"(m-tassano/dvdnet, GPL-3.0-or-later)")
    return paths  # type: ignore[return-value]


def _load(net: nn.Module, path: Path) -> nn.Module:
    """Strict load of a (DataParallel-saved) state dict: every key and shape must match."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} is not a {type(net).__name__} state dict: {e}") from None
    return net


def load_dvdnet(folder_or_paths: str | Path | Sequence[str | Path] | None = None, flow: FlowMethod = "deepflow",
                edge: Edge = "clamp", device: str | torch.device = "cpu") -> DVDnet:
    """Both stages from the published .pth files (see :func:`weight_paths`), in eval mode."""
    spatial_path, temporal_path = weight_paths(folder_or_paths)
    net = DVDnet(_load(DVDnetSpatial(), spatial_path), _load(DVDnetTemporal(), temporal_path), flow, edge)
    return net.to(device)


class DVDnetPrior(Prior):
    """D(x, sigma) = DVDnet's spatial stage, per frame, with sigma clamped into [5, 55]/255.

    x: (B, C, H, W) in [0, 1], C = 3 (or 1, run as R = G = B and averaged, see :mod:`channels`).
    The whole video denoiser is ``prior.video`` (:meth:`DVDnet.denoise_video`).
    """

    space = "pixel"
    name = "dvdnet"
    sigma_min = SIGMA_MIN
    sigma_max = SIGMA_MAX

    def __init__(self, video: DVDnet):
        super().__init__()
        self.video = video

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, prompt: str | None) -> torch.Tensor:
        return apply_channels(self.video.denoise_frames, x, sigma.clamp(self.sigma_min, self.sigma_max), 3)
