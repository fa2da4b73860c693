"""A small EDM-preconditioned UNet: D(x, sigma) in the network's [-1, 1] space.

Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models" (NeurIPS
2022), Table 1 (preconditioning) and Eq. 7: D(x, sigma) = c_skip x + c_out F(c_in x, c_noise).
The backbone F is a compact noise-conditional UNet: residual blocks with GroupNorm + SiLU, the
noise level entering every block as a scale/shift of its second normalization (Fourier
features of c_noise -> MLP), optional self-attention at the lowest level only.
The config dataclass is exactly what is saved next to the weights (safetensors metadata), so
``load_edm_unet(path)`` rebuilds the network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from operators.priors.json_config import JsonConfig
from operators.priors.padding import crop_to, pad_to_multiple


@dataclass(frozen=True)
class EDMUNetConfig(JsonConfig):
    """Architecture and preconditioning of :class:`EDMUNet` (sigmas in [-1, 1] units)."""

    in_channels: int = 3
    out_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 192)
    blocks: tuple[int, ...] = (1, 2, 2, 2)  # residual blocks per level (encoder; decoder mirrors)
    emb_dim: int = 128
    fourier_features: int = 32
    groups: int = 8
    attention: bool = False  # one self-attention block at the lowest level
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if len(self.channels) != len(self.blocks) or not self.channels:
            raise ValueError(f"channels {self.channels} and blocks {self.blocks} need the same length > 0")
        if any(c % self.groups for c in self.channels):
            raise ValueError(f"every channel count {self.channels} must divide by groups={self.groups}")
        if min(self.blocks) < 1:
            raise ValueError(f"need at least one block per level, got {self.blocks}")



class FourierFeatures(nn.Module):
    """c_noise: (B,) -> (B, n): sin/cos at log-spaced fixed frequencies 2^-3 .. 2^4."""

    def __init__(self, n: int):
        super().__init__()
        freqs = 2 * math.pi * torch.logspace(-3, 4, n // 2, base=2.0)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        arg = c_noise[:, None].float() * self.freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, noise scale/shift, GroupNorm-SiLU-conv, plus skip; scaled by 1/sqrt(2)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as (close to) its skip path
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm2(h), scale + 1))
        h = self.conv2(h)
        return (h + self.skip(x)) * math.sqrt(0.5)


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions, residual, output projection zero-initialised."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


class EDMUNet(nn.Module):
    """D(x, sigma): x (B, C, H, W) in [-1, 1] space, sigma (B,) > 0 -> (B, C_out, H, W); any H, W."""

    def __init__(self, config: EDMUNetConfig):
        super().__init__()
        self.config = cfg = config
        ch, e, g = cfg.channels, cfg.emb_dim, cfg.groups
        self.fourier = FourierFeatures(cfg.fourier_features)
        self.mlp = nn.Sequential(nn.Linear(cfg.fourier_features, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())
        self.inp = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        c_prev = ch[0]
        for lvl, (c, n) in enumerate(zip(ch, cfg.blocks)):
            self.enc.append(nn.ModuleList(ResBlock(c_prev if i == 0 else c, c, e, g) for i in range(n)))
            c_prev = c
            if lvl < len(ch) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.attn = SelfAttention(ch[-1], g) if cfg.attention else None
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for lvl in reversed(range(len(ch) - 1)):
            c = ch[lvl]
            self.up.append(nn.Conv2d(ch[lvl + 1], c, 3, padding=1))
            self.dec.append(nn.ModuleList(ResBlock(2 * c if i == 0 else c, c, e, g) for i in range(cfg.blocks[lvl])))
        self.out_norm = nn.GroupNorm(g, ch[0])
        self.out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # F = 0 at init: D starts as c_skip * x
        nn.init.zeros_(self.out.bias)

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this (2^(levels - 1))."""
        return 2 ** (len(self.config.channels) - 1)

    def backbone(self, x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """F(c_in x, c_noise): x_in (B, C, H, W) with H, W multiples of ``self.multiple``."""
        emb = self.mlp(self.fourier(c_noise))
        h = self.inp(x_in)
        skips = []
        for lvl, blocks in enumerate(self.enc):
            for blk in blocks:
                h = blk(h, emb)
            if lvl < len(self.down):
                skips.append(h)
                h = self.down[lvl](h)
        if self.attn is not None:
            h = self.attn(h)
        for up, blocks in zip(self.up, self.dec):
            h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in blocks:
                h = blk(h, emb)
        return self.out(F.silu(self.out_norm(h)))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``cond``: (B, C_cond, H, W) fed to F beside c_in x, concatenated on channels
        (in_channels = C + C_cond: a conditional model, SR3 / Palette); None: unconditional."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        s = sigma.reshape(-1, 1, 1, 1)
        sd = self.config.sigma_data
        # Karras et al. 2022, Table 1 (EDM preconditioning).
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + s**2).sqrt()
        c_noise = sigma.clamp(min=1e-12).log() / 4  # sigma = 0: c_out = 0, so D = x exactly
        xp, size = pad_to_multiple(x, self.multiple)
        x_in = c_in * xp
        if cond is not None:
            x_in = torch.cat([x_in, pad_to_multiple(cond.to(x_in.dtype), self.multiple)[0]], dim=1)
        f_x = crop_to(self.backbone(x_in, c_noise), size)
        return c_skip * x + c_out * f_x.to(x.dtype)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Karras et al. 2022, Table 1)."""
        sd = self.config.sigma_data
        return (sigma**2 + sd**2) / (sigma * sd) ** 2


def save_edm_unet(
    net: EDMUNet, path: str | Path, extra: dict[str, str] | None = None, dtype: torch.dtype = torch.float32
) -> None:
    """Weights as safetensors (``dtype``: float16 halves the file; loading casts back to float32).

    metadata["config"] holds the JSON config; ``extra`` adds more strings (a prior's own config).
    """
    from safetensors.torch import save_file

    meta = {"format": "pt", "kind": "edm_unet", "config": net.config.to_json(), **(extra or {})}
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in net.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of ``path`` (raises FileNotFoundError when absent)."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(str(path))
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_edm_unet(path: str | Path, device: str | torch.device = "cpu") -> EDMUNet:
    """Rebuild an :class:`EDMUNet` from its safetensors file (config from its metadata)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("kind") != "edm_unet" or "config" not in meta:
        raise ValueError(f"{path} is not an EDM UNet file (metadata kind={meta.get('kind')!r})")
    net = EDMUNet(EDMUNetConfig.from_json(meta["config"]))
    state = {k: v.float() for k, v in load_file(str(path), device="cpu").items()}
    net.load_state_dict(state)
    return net.to(device).eval()
