"""restoray's block codec: whitened block PCA plus learned corrections, the embedded latent
prior's codec.

encode: 4x4 pixel blocks (pixel-unshuffle, 48 values per block for RGB) -> ``latent_channels``
values per block by a linear map initialised to the whitened PCA basis of training blocks,
plus a learned residual (conv blocks at 1/4 resolution). decode: the transposed basis times the
latent plus the block mean, plus a learned residual, then pixel-shuffle. The residual nets end
in a zero-initialised conv, so an untrained codec *is* whitened PCA: 30.5 dB on CBSD68 with 8
channels, where the first conv autoencoder (``autoencoder.py``), trained from scratch on this
CPU, reached 24.4 dB. Training only has to improve on PCA: the decoder learns to remove the
block edges and to restore what the kept components drop, the encoder to choose what the
decoder can use. Whitening gives every latent channel unit variance on the training data,
the scale a latent denoiser expects. Images in [0, 1]; the network works in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from operators.priors.autoencoder import ConvBlock
from operators.priors.base import Codec
from operators.priors.json_config import JsonConfig
from operators.priors.scaled_codec import check_divisible

KIND = "block_codec"


@dataclass(frozen=True)
class BlockCodecConfig(JsonConfig):
    """What is saved next to the weights (safetensors metadata["config"])."""

    in_channels: int = 3
    latent_channels: int = 8
    factor: int = 4  # block size: the latent is H/factor x W/factor
    width: int = 96  # channels of the residual nets (at 1/factor resolution)
    blocks: int = 3  # residual conv blocks in each of the encoder and decoder corrections


def _residual_net(c_in: int, width: int, blocks: int, c_out: int) -> nn.Sequential:
    last = nn.Conv2d(width, c_out, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), *[ConvBlock(width) for _ in range(blocks)],
                         nn.SiLU(), last)


class BlockCodec(Codec):
    """encode: (B, C, H, W) in [0, 1] -> (B, latent_channels, H/f, W/f); decode back (unclamped)."""

    def __init__(self, config: BlockCodecConfig = BlockCodecConfig()):
        super().__init__()
        self.config = cfg = config
        self.factor = cfg.factor
        self.latent_channels = cfg.latent_channels
        d = cfg.in_channels * cfg.factor**2
        if cfg.latent_channels > d:
            raise ValueError(f"latent_channels={cfg.latent_channels} exceeds the {d} values of a block")
        self.register_buffer("mean", torch.zeros(d))
        eye = torch.eye(d)[: cfg.latent_channels]
        self.analysis = nn.Parameter(eye.clone())  # (k, d): latent = analysis @ (block - mean)
        self.synthesis = nn.Parameter(eye.T.clone())  # (d, k): block = synthesis @ latent + mean
        self.encoder_residual = _residual_net(d, cfg.width, cfg.blocks, cfg.latent_channels)
        self.decoder_residual = _residual_net(cfg.latent_channels, cfg.width, cfg.blocks, d)

    @torch.no_grad()
    def fit_pca(self, images: torch.Tensor) -> "BlockCodec":
        """Set mean, analysis and synthesis to the whitened PCA of the blocks of ``images``
        (B, C, H, W) in [0, 1]; the residual nets are left as they are."""
        u = self._blocks(images).permute(0, 2, 3, 1).reshape(-1, self.mean.numel()).double()
        mean = u.mean(0)
        evals, evecs = torch.linalg.eigh(torch.cov((u - mean).T))
        order = evals.argsort(descending=True)[: self.latent_channels]
        v, lam = evecs[:, order], evals[order].clamp_min(1e-12)
        self.mean.copy_(mean.float())
        self.analysis.copy_((v / lam.sqrt()).T.float())
        self.synthesis.copy_((v * lam.sqrt()).float())
        return self

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.factor, "the embedded block codec")
        return F.pixel_unshuffle(2 * x - 1, self.factor)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        u = self._blocks(x)
        linear = torch.einsum("kd,bdhw->bkhw", self.analysis, u - self.mean.view(1, -1, 1, 1))
        return linear + self.encoder_residual(u)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        u = torch.einsum("dk,bkhw->bdhw", self.synthesis, z) + self.mean.view(1, -1, 1, 1)
        return (F.pixel_shuffle(u + self.decoder_residual(z), self.factor) + 1) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction decode(encode(x)), for training."""
        return self.decode(self.encode(x))


def save_block_codec(codec: BlockCodec, path: str | Path, dtype: torch.dtype = torch.float32,
                     extra: dict[str, str] | None = None) -> None:
    """Weights as safetensors; metadata holds the JSON config plus ``extra`` strings."""
    from safetensors.torch import save_file

    meta = {"format": "pt", "kind": KIND, "config": codec.config.to_json(), **(extra or {})}
    keep32 = {"mean", "analysis", "synthesis"}  # the linear part stays exact
    state = {k: v.detach().to(torch.float32 if k in keep32 else dtype).contiguous().cpu()
             for k, v in codec.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def build_block_codec(meta: dict, path: str | Path) -> BlockCodec:
    """Rebuild from a safetensors file whose metadata ``meta`` says kind block_codec."""
    from safetensors.torch import load_file

    codec = BlockCodec(BlockCodecConfig.from_json(meta["config"]))
    codec.load_state_dict({k: v.float() for k, v in load_file(str(path), device="cpu").items()})
    return codec
