"""restoray's small convolutional autoencoder: the codec of the embedded latent prior.

Downsampling factor 4 (two stride-2 convs), a ``latent_channels``-channel latent, residual
conv blocks (conv-SiLU-conv + skip, no normalization) at 1/2 and 1/4 resolution and one at
full resolution in the decoder. Trained with an L2 (+ optional L1) reconstruction loss by the
training job to >= 30 dB PSNR on CBSD68. Images in [0, 1]; the network works in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from operators.priors.base import Codec
from operators.priors.json_config import JsonConfig
from operators.priors.scaled_codec import check_divisible


@dataclass(frozen=True)
class AutoencoderConfig(JsonConfig):
    """What is saved next to the weights (safetensors metadata["config"])."""

    in_channels: int = 3
    latent_channels: int = 8
    channels: tuple[int, int, int] = (32, 64, 128)  # widths at 1, 1/2, 1/4 resolution
    blocks: int = 2  # residual blocks at 1/2 and at 1/4 resolution, each side

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) != 3:
            raise ValueError(f"channels must give 3 widths (1, 1/2, 1/4 resolution), got {self.channels}")



class ConvBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(x)))


class Upsample(nn.Module):
    """Nearest 2x upsampling then a 3x3 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConvAutoencoder(Codec):
    """encode: (B, C, H, W) in [0, 1] -> (B, latent_channels, H/4, W/4); decode back (unclamped)."""

    factor = 4

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig()):
        super().__init__()
        self.config = cfg = config
        c0, c1, c2 = cfg.channels
        self.latent_channels = cfg.latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c0, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c0, c1, 3, stride=2, padding=1), *[ConvBlock(c1) for _ in range(cfg.blocks)],
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), *[ConvBlock(c2) for _ in range(cfg.blocks)],
            nn.SiLU(), nn.Conv2d(c2, cfg.latent_channels, 3, padding=1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, c2, 3, padding=1), *[ConvBlock(c2) for _ in range(cfg.blocks)],
            Upsample(c2, c1), *[ConvBlock(c1) for _ in range(cfg.blocks)],
            Upsample(c1, c0), ConvBlock(c0),
            nn.SiLU(), nn.Conv2d(c0, cfg.in_channels, 3, padding=1),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.factor, "the embedded autoencoder")
        return self.encoder(2 * x - 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.decoder(z) + 1) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction decode(encode(x)), for training."""
        return self.decode(self.encode(x))


def save_autoencoder(ae: ConvAutoencoder, path: str | Path, dtype: torch.dtype = torch.float32,
                     extra: dict[str, str] | None = None) -> None:
    """Weights as safetensors; metadata holds the JSON config plus ``extra`` strings."""
    from safetensors.torch import save_file

    meta = {"format": "pt", "kind": "autoencoder", "config": ae.config.to_json(), **(extra or {})}
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in ae.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu") -> Codec:
    """Rebuild an embedded codec from its safetensors file (config from its metadata): a
    :class:`ConvAutoencoder` or a :class:`~operators.priors.block_codec.BlockCodec`."""
    from safetensors.torch import load_file

    from operators.priors.block_codec import KIND as BLOCK, build_block_codec
    from operators.priors.edm_unet import read_metadata

    meta = read_metadata(path)
    if "config" in meta and meta.get("kind") == BLOCK:
        return build_block_codec(meta, path).to(device).eval()
    if meta.get("kind") != "autoencoder" or "config" not in meta:
        raise ValueError(f"{path} is not a codec file (metadata kind={meta.get('kind')!r}; "
                         f"valid: autoencoder, {BLOCK})")
    ae = ConvAutoencoder(AutoencoderConfig.from_json(meta["config"]))
    ae.load_state_dict({k: v.float() for k, v in load_file(str(path), device="cpu").items()})
    return ae.to(device).eval()
