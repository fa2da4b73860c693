"""The lifting-scheme invertible network of LatentINDIGO (You, Siromani, Dragotti, arXiv
2505.12935, Sec. III-B1, IV-A): g(x, y) -> (c, d), g^-1(c, d, y) -> x, exact by construction.

Per level: split x into a coarse band c and details d (Haar), then ``pairs`` additive lifting
steps d <- d - P(c, e), c <- c + U(d, e) (operators/priors/inn_blocks.py, where the CPU
substitutes for the paper's Swin blocks and KDSR estimator are described); the next level splits
c again. e embeds the LQ image y; the same e runs forward and inverse, so g^-1(g(x)) = x for any
weights and any y.

- PixelINN (``split="haar"``, non-redundant): each level halves H and W, so with 2 levels c is
  the x4 LQ image. x is reflect-padded to a multiple of 2^levels inside; c has size
  ceil(H / 2^levels) x ceil(W / 2^levels) (y's size, floor, for sizes that are multiples);
  :func:`fit` crops or pads an LQ image to c's size, and ``inverse(..., size=(H, W))`` crops back.
- LatentINN (``split="undecimated"``, stationary Haar): shape-preserving, c keeps x's size
  (scale 1); used on latents E(x) against E(upsample(y)).

Training (Eqs. 9-13 and 17-21): ``||g(x).c - y||_1 + lam ||g^-1(y, g(x).d) - x||_1``
(:func:`training_loss`; LatentINN on E(x) vs E(upsample y), inverse term on the decoded x_inv).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from operators.degradations.blind import upsample
from operators.priors.base import Codec
from operators.priors.inn_blocks import (
    DegradationEncoder, LiftingLevel, haar_merge, haar_split, undecimated_merge, undecimated_split,
)  # fmt: skip
from operators.priors.json_config import JsonConfig
from operators.priors.model_file import read_model, save_model
from operators.priors.padding import crop_to, pad_to_multiple

KIND = "inn"


@dataclass(frozen=True)
class INNConfig(JsonConfig):
    """``channels``: of x (3 for PixelINN, the codec's latent channels for LatentINN);
    ``lq_channels``: of the LQ image the embedding sees; ``pairs``: predict / update pairs per
    level; ``lam``: weight of the inverse term of the training loss; ``scale``: x's size over c's,
    derived (2^levels for ``haar``, 1 for ``undecimated``) and checked when given."""

    channels: int = 3
    levels: int = 2
    pairs: int = 2
    width: int = 24
    embed_dim: int = 64
    lq_channels: int = 3
    split: Literal["haar", "undecimated"] = "haar"
    lam: float = 1.0
    scale: int | None = None

    def __post_init__(self):
        if self.split not in ("haar", "undecimated"):
            raise ValueError(f"split must be 'haar' or 'undecimated', got {self.split!r}")
        if self.levels < 0 or self.pairs < 1 or min(self.channels, self.width, self.embed_dim) < 1:
            raise ValueError(f"need levels >= 0 and pairs, channels, width, embed_dim >= 1, got {self}")
        derived = 2**self.levels if self.split == "haar" else 1
        if self.scale is not None and self.scale != derived:
            raise ValueError(f"split {self.split!r} with {self.levels} levels has scale {derived}, "
                             f"got scale={self.scale}")
        object.__setattr__(self, "scale", derived)


class Lifted(NamedTuple):
    c: torch.Tensor  # (B, C, h, w): coarse band
    d: tuple[torch.Tensor, ...]  # details per level, finest first: (B, 3C, ., .)


class INN(nn.Module):
    """g(x, y) = :meth:`forward`, g^-1(c, d, y) = :meth:`inverse`; x: (B, channels, H, W),
    y: (B, lq_channels, h, w) (or pass its embedding ``e`` = :meth:`embed` (y) instead)."""

    def __init__(self, config: INNConfig):
        super().__init__()
        self.config = cfg = config
        self.encoder = DegradationEncoder(cfg.lq_channels, cfg.embed_dim)
        self.levels = nn.ModuleList(LiftingLevel(cfg.channels, cfg.width, cfg.embed_dim, cfg.pairs)
                                    for _ in range(cfg.levels))

    def embed(self, y: torch.Tensor) -> torch.Tensor:
        """The degradation embedding e: (B, embed_dim)."""
        return self.encoder(y)

    def _split(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        return haar_split(x) if self.config.split == "haar" else undecimated_split(x, level)

    def _merge(self, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return haar_merge(c, d) if self.config.split == "haar" else undecimated_merge(c, d)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, e: torch.Tensor | None = None) -> Lifted:
        e = self.embed(y) if e is None else e
        if self.config.split == "haar":
            x, _ = pad_to_multiple(x, self.config.scale)
        c, ds = x, []
        for level, lifting in enumerate(self.levels):
            c, d = lifting(*self._split(c, level), e)
            ds.append(d)
        return Lifted(c, tuple(ds))

    def inverse(self, c: torch.Tensor, d: tuple[torch.Tensor, ...], y: torch.Tensor | None = None,
                e: torch.Tensor | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
        """x from (c, d); ``size``: crop to the (H, W) the forward pass padded."""
        e = self.embed(y) if e is None else e
        for level in reversed(range(len(self.levels))):
            c = self._merge(*self.levels[level].inverse(c, d[level], e))
        return c if size is None else crop_to(c, size)


def fit(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """y cropped, or replicate-padded on the bottom / right, to the (h, w) of ``like``."""
    h, w = like.shape[-2:]
    y = y[..., :h, :w]
    ph, pw = h - y.shape[-2], w - y.shape[-1]
    return F.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y


def build(config: dict) -> INN:
    """A fresh :class:`INN` from config keys (unknown keys raise, naming the valid ones)."""
    known = {f.name for f in fields(INNConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown INNConfig key(s) {unknown}; valid: {sorted(known)}")
    return INN(INNConfig(**config))


def training_loss(model: INN, hq: torch.Tensor, lq: torch.Tensor, generator: torch.Generator | None = None,
                  codec: Codec | None = None) -> torch.Tensor:
    """Scalar loss on pairs hq: (B, 3, H, W), lq: (B, 3, h, w) in [0, 1]; deterministic.

    PixelINN (Eqs. 9-13): mean |g(x).c - y| + lam mean |g^-1(y, g(x).d) - x|, lq at H / scale.
    LatentINN (Eqs. 17-21): z = E(x), mu = E(upsample(y, (H, W))) (``codec`` None: E = identity,
    for pixel priors; lq of any size): mean |g(z).c - mu| + lam mean |Dec(g^-1(mu, g(z).d)) - x|."""
    cfg = model.config
    e = model.embed(lq)
    if cfg.split == "haar":
        s, (H, W) = cfg.scale, hq.shape[-2:]
        if lq.shape[-2] not in (H // s, -(-H // s)) or lq.shape[-1] not in (W // s, -(-W // s)):
            raise ValueError(f"PixelINN of scale {s} needs lq of size hq / {s}, got hq {H}x{W}, "
                             f"lq {tuple(lq.shape[-2:])}")
        c, d = model(hq, e=e)
        x_inv = model.inverse(fit(lq, c), d, e=e, size=(H, W))
        return (fit(c, lq) - lq).abs().mean() + cfg.lam * (x_inv - hq).abs().mean()
    mu = upsample(lq, tuple(hq.shape[-2:]))
    z, z_mu = hq, mu
    if codec is not None:
        if codec.latent_channels != cfg.channels:
            raise ValueError(f"LatentINN has {cfg.channels} channels but the codec's latent has "
                             f"{codec.latent_channels}")
        with torch.no_grad():
            z, z_mu = (codec.encode(pad_to_multiple(v, codec.factor)[0]) for v in (hq, mu))
    c, d = model(z, e=e)
    x_inv = model.inverse(z_mu, d, e=e)
    if codec is not None:
        x_inv = crop_to(codec.decode(x_inv), tuple(hq.shape[-2:]))
    return (c - z_mu).abs().mean() + cfg.lam * (x_inv - hq).abs().mean()


def save(model: INN, path: str | Path, extra: dict[str, str] | None = None) -> None:
    """float32 safetensors; metadata: kind "inn", the JSON config, and ``extra`` strings."""
    save_model(model, path, KIND, model.config.to_json(), extra)


def load(path: str | Path, device: str | torch.device = "cpu") -> INN:
    """Rebuild an :class:`INN` from its file (eval mode); a file of another kind is refused."""
    config, state = read_model(path, KIND, "an INN")
    model = INN(INNConfig.from_json(config))
    model.load_state_dict(state)
    return model.to(device).eval()
