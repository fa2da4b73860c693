"""JPEG compression: real (Pillow/libjpeg) forward, plus a differentiable surrogate (blockwise
DCT of YCbCr with the quality's quantization tables and a smooth rounding, after Shin & Song
2017, "JPEG-resistant adversarial images") for gradient-based solvers."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from operators.degradations._util import check_4d
from operators.degradations.base import Degradation, Noise

# ITU-T T.81 Annex K.1 quantization tables (luminance, chrominance).
_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
         14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
         49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA = [17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 + [47, 66] + [99] * 38

_RGB2YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def quant_table(quality: int, chroma: bool) -> np.ndarray:
    """(8, 8) table libjpeg uses at ``quality`` (jpeg_set_quality, baseline: entries in [1, 255])."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 / q if q < 50 else 200 - 2 * q
    base = np.array(_CHROMA if chroma else _LUMA, dtype=np.float64).reshape(8, 8)
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


def jpeg_roundtrip(x: torch.Tensor, quality: int, subsampling: str = "4:2:0") -> torch.Tensor:
    """Encode and decode each image of x: (B, C in {1, 3}, H, W) through Pillow (uint8)."""
    from PIL import Image

    arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for a in arr:
        im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
        with Image.open(io.BytesIO(buf.getvalue())) as dec:
            d = np.asarray(dec.convert(im.mode))
        out.append(d[..., None] if d.ndim == 2 else d)
    y = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    return (y.to(x.dtype) / 255).to(x.device)


def _dct_matrix(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Orthonormal 8-point DCT-II (JPEG's FDCT is this, applied to rows and columns)."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(dtype=dtype, device=device)


def smooth_round(x: torch.Tensor, mode: str = "cubic") -> torch.Tensor:
    """``cubic``: x + (round(x) - x)^3 (differentiable, Shin & Song 2017); ``ste``: round in the
    forward pass, identity gradient (straight-through)."""
    r = torch.round(x)
    if mode == "ste":
        return x + (r - x).detach()
    return x + (r - x) ** 3


@dataclass(frozen=True, eq=False)
class JPEG(Degradation):
    """y = decode(encode(x)) at ``quality`` (1-100) with chroma ``subsampling``; x, y (B, C, H, W)."""

    name: ClassVar[str] = "jpeg"
    linear: ClassVar[bool] = False
    quality: int = 75
    subsampling: Literal["4:2:0", "4:4:4"] | str = "4:2:0"
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"jpeg quality must be in [1, 100], got {self.quality}")
        if self.subsampling not in ("4:2:0", "4:4:4"):
            raise ValueError(f"jpeg subsampling must be '4:2:0' or '4:4:4', got {self.subsampling!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real JPEG (not differentiable; see ``surrogate``)."""
        check_4d(x)
        return jpeg_roundtrip(x, self.quality, self.subsampling)

    def surrogate(self, x: torch.Tensor, rounding: Literal["ste", "cubic"] = "ste") -> torch.Tensor:
        """Differentiable approximation of ``forward``: x (B, C in {1, 3}, H, W) -> same shape.

        ``ste`` (default) rounds exactly (within ~40 dB of real JPEG, chroma filters and
        libjpeg's integer DCT being the difference) with an identity gradient; ``cubic`` is
        Shin & Song's smooth x + (round(x) - x)^3, a looser match with a true gradient."""
        check_4d(x)
        b, c, h, w = x.shape
        m = 16 if (self.subsampling == "4:2:0" and c == 3) else 8
        ph, pw = -h % m, -w % m
        v = F.pad(x.clamp(0, 1) * 255, (0, pw, 0, ph), mode="replicate") if ph or pw else x.clamp(0, 1) * 255
        tq_l = torch.as_tensor(quant_table(self.quality, False), dtype=x.dtype, device=x.device)
        if c == 1:
            out = self._code(v, tq_l, rounding)
        else:
            offset = torch.tensor([0.0, 128.0, 128.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            ycc = torch.einsum("ij,bjhw->bihw", torch.as_tensor(_RGB2YCC, dtype=x.dtype, device=x.device), v) + offset
            y, cc = ycc[:, :1], ycc[:, 1:]
            tq_c = torch.as_tensor(quant_table(self.quality, True), dtype=x.dtype, device=x.device)
            y = self._code(y, tq_l, rounding)
            if self.subsampling == "4:2:0":
                cc = self._code(F.avg_pool2d(cc, 2), tq_c, rounding)
                # libjpeg's "fancy" upsampling is the triangle filter, i.e. bilinear at 2x
                cc = F.interpolate(cc, scale_factor=2, mode="bilinear", align_corners=False)
            else:
                cc = self._code(cc, tq_c, rounding)
            ycc = torch.cat([y, cc], 1) - offset
            inv = torch.as_tensor(np.linalg.inv(_RGB2YCC), dtype=x.dtype, device=x.device)
            out = torch.einsum("ij,bjhw->bihw", inv, ycc)
        return (out[..., :h, :w] / 255).clamp(0, 1)

    @staticmethod
    def _code(v: torch.Tensor, table: torch.Tensor, rounding: str) -> torch.Tensor:
        """Level-shift, 8x8 DCT, quantize (smooth rounding), dequantize, IDCT: planes
        v (B, c, H, W) in [0, 255]."""
        b, c, h, w = v.shape
        d = _dct_matrix(v.dtype, v.device)
        blocks = (v - 128).reshape(b, c, h // 8, 8, w // 8, 8).transpose(3, 4)  # (.., h/8, w/8, 8, 8)
        coef = d @ blocks @ d.T
        coef = smooth_round(coef / table, rounding) * table
        rec = (d.T @ coef @ d).transpose(3, 4).reshape(b, c, h, w)
        return rec + 128
