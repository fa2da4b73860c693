"""JPEG compression: real (Pillow/libjpeg) forward; the exact data step, the projection onto
the quantization constraint set (:mod:`jpeg_qcs`); and a differentiable surrogate (blockwise
DCT of YCbCr with the quantization tables and a smooth rounding, after Shin & Song 2017,
"JPEG-resistant adversarial images") for gradient-based solvers (DPS)."""
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
from operators.degradations.jpeg_qcs import SUBSAMPLING, block_dct, from_ycc, project_qcs, to_ycc

# The coding error is structured (8x8 blocks, ringing, chroma smear), not white: a Gaussian
# denoiser removes it best when told a level above its RMS. One denoiser call on y, then the QCS
# projection, on 6 BSDS400 training crops (128 px) at q10/30/70: best at 2x the RMS for FFDNet,
# 1.3-1.6x for the embedded prior; at 1.6x each is within 0.06 dB of its own best.
GAUSSIAN_EQUIVALENT = 1.6

# ITU-T T.81 Annex K.1 quantization tables (luminance, chrominance).
_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
         14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
         49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA = [17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 + [47, 66] + [99] * 38


def quant_table(quality: int, chroma: bool) -> np.ndarray:
    """(8, 8) table libjpeg uses at ``quality`` (jpeg_set_quality, baseline: entries in [1, 255];
    jpeg_quality_scaling's integer 5000 / q)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    base = np.array(_CHROMA if chroma else _LUMA, dtype=np.float64).reshape(8, 8)
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


def jpeg_roundtrip(x: torch.Tensor, quality: int, subsampling: str = "4:2:0",
                   tables: list | tuple | None = None) -> torch.Tensor:
    """Encode and decode each image of x: (B, C in {1, 3}, H, W) through Pillow (uint8).
    ``tables``: explicit quantization tables (64 values each, row-major) instead of the
    quality's; a single table for C = 3 codes the image as grey (a greyscale file)."""
    from PIL import Image

    arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    opts = {"quality": int(quality)} if tables is None else {"qtables": [[int(v) for v in t] for t in tables]}
    out = []
    for a in arr:
        im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        coded = im.convert("L") if tables is not None and len(tables) == 1 else im
        buf = io.BytesIO()
        coded.save(buf, format="JPEG", subsampling=subsampling, **opts)
        with Image.open(io.BytesIO(buf.getvalue())) as dec:
            d = np.asarray(dec.convert(im.mode))
        out.append(d[..., None] if d.ndim == 2 else d)
    y = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    return (y.to(x.dtype) / 255).to(x.device)


def smooth_round(x: torch.Tensor, mode: str = "cubic") -> torch.Tensor:
    """``cubic``: x + (round(x) - x)^3 (differentiable, Shin & Song 2017); ``ste``: round in the
    forward pass, identity gradient (straight-through)."""
    r = torch.round(x)
    if mode == "ste":
        return x + (r - x).detach()
    return x + (r - x) ** 3


def file_tables(data: bytes) -> dict | None:
    """``{"tables", "subsampling"}`` of a JPEG file's bytes (Pillow's ``quantization`` and
    ``layer``), or None for other files and JPEGs outside this model (CMYK, RGB coded without
    YCbCr, other samplings, Cb and Cr with different tables)."""
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - not an image Pillow reads: no tables
        return None
    with im:
        if im.format != "JPEG":
            return None
        q, layer = im.quantization, im.layer
        if im.mode == "L" and len(layer) == 1:
            return {"tables": [list(q[layer[0][3]])], "subsampling": "4:4:4"}
        if im.mode != "RGB" or len(layer) != 3 or im.info.get("adobe_transform", 1) == 0:
            return None
        (_, h, v, t_y), (_, h1, v1, t_cb), (_, h2, v2, t_cr) = layer
        sub = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0"}.get((h, v))
        if sub is None or (h1, v1, h2, v2) != (1, 1, 1, 1) or t_cb != t_cr:
            return None
        return {"tables": [list(q[t_y]), list(q[t_cb])], "subsampling": sub}


@dataclass(frozen=True, eq=False)
class JPEG(Degradation):
    """y = decode(encode(x)) at ``quality`` (1-100) with chroma ``subsampling``; x, y (B, C, H, W).

    ``tables``: a file's own quantization tables ([luma, chroma], or [luma] for a greyscale
    file; 64 ints each, row-major as Pillow's ``Image.quantization``), used instead of the
    quality's. Noiseless, the exact data step (``prox``, every rho) is the projection onto the
    quantization constraint set of y (:mod:`jpeg_qcs`); ``init_estimate`` is y itself."""

    name: ClassVar[str] = "jpeg"
    linear: ClassVar[bool] = False
    quality: int = 75
    subsampling: Literal["4:2:0", "4:2:2", "4:4:4"] | str = "4:2:0"
    tables: tuple[tuple[int, ...], ...] | None = None
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"jpeg quality must be in [1, 100], got {self.quality}")
        if self.subsampling not in SUBSAMPLING:
            raise ValueError(f"jpeg subsampling must be one of {', '.join(SUBSAMPLING)}, got {self.subsampling!r}")
        if self.tables is not None:
            tables = tuple(tuple(int(v) for v in t) for t in self.tables)
            if len(tables) not in (1, 2) or any(len(t) != 64 or not 1 <= min(t) <= max(t) <= 65535 for t in tables):
                raise ValueError("jpeg tables: [luma] or [luma, chroma], 64 ints in [1, 65535] each")
            object.__setattr__(self, "tables", tables)

    def quant_tables(self) -> list[np.ndarray]:
        """The (8, 8) tables: [luma, chroma], or [luma] for a greyscale file's tables."""
        if self.tables is not None:
            return [np.asarray(t, dtype=np.float64).reshape(8, 8) for t in self.tables]
        return [quant_table(self.quality, False), quant_table(self.quality, True)]

    @property
    def coding_rmse(self) -> float:
        """The RMS error the decoded JPEG carries, estimated from the luma table:
        0.063 sqrt(mean(Q) / 255), fitted on BSDS400 training images at q 5-90 (measured 0.074 at
        q5, 0.055 at q10, 0.030 at q50, 0.014 at q90; within ~20% of the fit)."""
        return 0.063 * math.sqrt(float(self.quant_tables()[0].mean()) / 255)

    @property
    def init_sigma(self) -> float:
        """The Gaussian noise level the decoded JPEG (the initial estimate) is treated as carrying:
        :data:`GAUSSIAN_EQUIVALENT` x :attr:`coding_rmse` (plus any measurement noise), so a
        schedule started at that level starts from y itself and its first denoiser call is told
        the level that removes the coding error best."""
        return math.hypot(GAUSSIAN_EQUIVALENT * self.coding_rmse, self.sigma_n)

    def params(self) -> dict:
        out = {"quality": self.quality, "subsampling": self.subsampling}
        if self.tables is not None:
            out["tables"] = [list(t) for t in self.tables]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real JPEG (not differentiable; see ``surrogate``)."""
        check_4d(x)
        return jpeg_roundtrip(x, self.quality, self.subsampling, self.tables)

    @property
    def exact_prox(self) -> bool:
        """The projection is the exact data step of a noiseless JPEG only."""
        return self.noise.sigma == 0 and self.noise.peak is None

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """P_C(x), C the quantization constraint set of the decoded y: (B, C, H, W) -> same."""
        check_4d(x)
        return project_qcs(x, y, self.quant_tables(), self.subsampling).to(x.dtype)

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """argmin_x i_C(x) + rho / 2 ||x - z||^2 = P_C(z) for every rho (norm: the (Y, Cb, Cr) one)."""
        if not self.exact_prox:
            raise NotImplementedError("jpeg with measurement noise: no closed-form prox (use inexact_prox_steps)")
        return self.project(z, y)

    def surrogate(self, x: torch.Tensor, rounding: Literal["ste", "cubic"] = "ste") -> torch.Tensor:
        """Differentiable approximation of ``forward``: x (B, C in {1, 3}, H, W) -> same shape.

        ``ste`` (default) rounds exactly (within ~40 dB of real JPEG, chroma filters and
        libjpeg's integer DCT being the difference) with an identity gradient; ``cubic`` is
        Shin & Song's smooth x + (round(x) - x)^3, a looser match with a true gradient."""
        check_4d(x)
        b, c, h, w = x.shape
        s = SUBSAMPLING[self.subsampling] if c == 3 else (1, 1)
        ph, pw = -h % (8 * max(s)), -w % (8 * max(s))
        v = F.pad(x.clamp(0, 1), (0, pw, 0, ph), mode="replicate") if ph or pw else x.clamp(0, 1)
        tables = [torch.as_tensor(t, dtype=x.dtype, device=x.device) for t in self.quant_tables()]
        if c == 1:
            return ((self._code(v * 255 - 128, tables[0], rounding) + 128)[..., :h, :w] / 255).clamp(0, 1)
        ycc = to_ycc(v)
        luma = self._code(ycc[:, :1], tables[0], rounding)
        if len(tables) == 1:  # a greyscale file's tables: the image is coded as grey
            cc = torch.zeros_like(ycc[:, 1:])
        elif s != (1, 1):
            cc = self._code(F.avg_pool2d(ycc[:, 1:], s), tables[1], rounding)
            # libjpeg's "fancy" upsampling is the triangle filter, i.e. bilinear at 2x
            cc = F.interpolate(cc, scale_factor=s, mode="bilinear", align_corners=False)
        else:
            cc = self._code(ycc[:, 1:], tables[1], rounding)
        return from_ycc(torch.cat([luma, cc], 1))[..., :h, :w].clamp(0, 1)

    @staticmethod
    def _code(v: torch.Tensor, table: torch.Tensor, rounding: str) -> torch.Tensor:
        """8x8 DCT, quantize (smooth rounding), dequantize, IDCT: level-shifted planes
        v (B, c, H, W), 0-255 units."""
        reps = (v.shape[-2] // 8, v.shape[-1] // 8)
        coef = block_dct(v) / table.repeat(*reps)
        return block_dct(smooth_round(coef, rounding) * table.repeat(*reps), inverse=True)
