"""The quantization constraint set (QCS) of a baseline JPEG and the projection onto it.

A JPEG stores k = round(DCT8(S_p x) / Q_p) per plane p (Y, Cb, Cr, level-shifted, 0-255
units), where S_p pads by edge replication as libjpeg does (luma to a multiple of 8, chroma
to 8 s) and averages s x s boxes for subsampled chroma (s = (2, 2) for 4:2:0, (1, 2) for
4:2:2). Every image the encoder maps to the same k lies in the convex set
    C = {x : DCT8(S_p x) / Q_p in [k_p - 1/2, k_p + 1/2] for every plane p}
(Zakhor 1992; Yang, Galatsanos & Katsaggelos 1993, "projection onto the QCS"). Up to
libjpeg's integer arithmetic, C holds the original image, so projecting onto it is an
exact, convex data step. The metric is the squared error of the full-res (Y, Cb, Cr) planes.

Exact parts (closed form): per plane the sets are independent; the 8x8 DCT is orthonormal,
so luma and 4:4:4 chroma are projected by clamping coefficients; for subsampled chroma the
constraint is on the box mean B c, and c + up(P(B c) - B c) (the correction added to every
pixel of its box) is the orthogonal projection. Sizes that are not multiples of the block:
the constraint is on the replicate-padded plane R c; Dykstra's algorithm (Boyle & Dykstra
1986) between range(R) and the padded QCS gives the nearest point in the metric that counts
an edge pixel once per copy, to ``tol`` (iterative, only there; default 0.05 in 0-255
units, a tenth of the uint8 rounding that blurs C anyway). A grey file (one table) read
as RGB: its chroma is zero, so P sets Cb = Cr = 0.
Recovering k from the decoded y: luma from y's Y plane; subsampled chroma through the least
squares inverse of libjpeg's "fancy" (triangle) upsampling, since B up != I. A decoded y is in
C up to uint8 rounding and clipping (4:2:0: also the decoder's upsampling filter)."""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

RGB2YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (1, 2), "4:2:0": (2, 2)}


def dct_matrix(dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """Orthonormal 8-point DCT-II (JPEG's FDCT is this, applied to rows and columns)."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(dtype=dtype, device=device)


def block_dct(v: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """8x8 blockwise DCT8 (or its inverse) of planes v: (B, c, H, W), H and W multiples of 8."""
    b, c, h, w = v.shape
    d = dct_matrix(v.dtype, v.device)
    d, dt = (d.T, d) if inverse else (d, d.T)
    blocks = v.reshape(b, c, h // 8, 8, w // 8, 8).transpose(3, 4)
    return (d @ blocks @ dt).transpose(3, 4).reshape(b, c, h, w)


def to_ycc(x: torch.Tensor) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> level-shifted (Y - 128, Cb - 128, Cr - 128) in 0-255 units."""
    m = torch.as_tensor(RGB2YCC, dtype=x.dtype, device=x.device)
    shift = torch.tensor([128.0, 0.0, 0.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, x * 255) - shift


def from_ycc(v: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_ycc`."""
    m = torch.as_tensor(np.linalg.inv(RGB2YCC), dtype=v.dtype, device=v.device)
    shift = torch.tensor([128.0, 0.0, 0.0], dtype=v.dtype, device=v.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, v + shift) / 255


def _pad(v: torch.Tensor, mh: int, mw: int) -> torch.Tensor:
    """Edge replication up to multiples of (mh, mw), as libjpeg pads: (B, c, H, W)."""
    ph, pw = -v.shape[-2] % mh, -v.shape[-1] % mw
    return F.pad(v, (0, pw, 0, ph), mode="replicate") if ph or pw else v


def _fold_mean(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Projection onto range(R), R the replicate padding of an (h, w) plane: every real edge
    pixel and its copies get their mean. v: (B, c, Hp, Wp) -> same."""
    sums = []
    for t in (v, torch.ones_like(v[:1, :1])):
        t = torch.cat([t[..., : h - 1, :], t[..., h - 1:, :].sum(-2, keepdim=True)], -2)
        sums.append(torch.cat([t[..., : w - 1], t[..., w - 1:].sum(-1, keepdim=True)], -1))
    return F.pad(sums[0] / sums[1], (0, v.shape[-1] - w, 0, v.shape[-2] - h), mode="replicate")


@functools.lru_cache(maxsize=8)
def _upsample_pinv(n_out: int, s: int) -> np.ndarray:
    """Least-squares inverse (n_in, n_out) of libjpeg's 1-D fancy upsampling by s in {1, 2}
    (out[2i] = (3 c_i + c_{i-1}) / 4, out[2i+1] = (3 c_i + c_{i+1}) / 4, edges replicated)."""
    n_in = -(-n_out // s)
    if s == 1:
        return np.eye(n_out)
    u = np.zeros((2 * n_in, n_in))
    i = np.arange(n_in)
    u[2 * i, i] += 0.75
    u[2 * i, np.maximum(i - 1, 0)] += 0.25
    u[2 * i + 1, i] += 0.75
    u[2 * i + 1, np.minimum(i + 1, n_in - 1)] += 0.25
    return np.linalg.pinv(u[:n_out])


def _downsample(c: torch.Tensor, s: tuple[int, int], decoded: bool) -> torch.Tensor:
    """Full-res chroma (B, c, H, W) -> the encoder's component, padded (R then box mean);
    ``decoded``: y's chroma came through the decoder's upsampling, so its real part is
    recovered by that filter's least-squares inverse instead of the box mean."""
    h, w = c.shape[-2:]
    out = F.avg_pool2d(_pad(c, 8 * s[0], 8 * s[1]), s) if s != (1, 1) else _pad(c, 8, 8)
    if decoded and s != (1, 1):
        mh, mw = (torch.as_tensor(_upsample_pinv(n, k), dtype=c.dtype, device=c.device)
                  for n, k in ((h, s[0]), (w, s[1])))
        real = mh @ c @ mw.T
        out = torch.cat([torch.cat([real, out[..., : real.shape[-2], real.shape[-1]:]], -1),
                         out[..., real.shape[-2]:, :]], -2)
    return out


def _grid(table: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """An (8, 8) table tiled over the coefficient grid of ``like`` (B, c, H, W): (H, W)."""
    t = torch.as_tensor(np.asarray(table, dtype=np.float64).reshape(8, 8), dtype=like.dtype, device=like.device)
    return t.repeat(like.shape[-2] // 8, like.shape[-1] // 8)


def quantized_coefficients(y: torch.Tensor, tables: list[np.ndarray], subsampling: str) -> list[torch.Tensor]:
    """The stored k of the coded planes of a decoded JPEG y (B, C in {1, 3}, H, W) in [0, 1]:
    [k_Y (B, 1, ...)] or [k_Y, k_CbCr (B, 2, ...)], each on its padded (subsampled) grid."""
    v = y * 255 - 128 if y.shape[1] == 1 else to_ycc(y)
    luma = block_dct(_pad(v[:, :1], 8, 8))
    ks = [torch.round(luma / _grid(tables[0], luma))]
    if y.shape[1] == 3 and len(tables) > 1:
        chroma = block_dct(_downsample(v[:, 1:], SUBSAMPLING[subsampling], decoded=True))
        ks.append(torch.round(chroma / _grid(tables[1], chroma)))
    return ks


def _box_step(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, s: tuple[int, int]) -> torch.Tensor:
    """Exact projection of padded planes v (B, c, Hp, Wp) onto {DCT8(box_s v) in [lo, hi]}:
    clamp the coefficients of the box means, add the correction to every pixel of its box."""
    m = F.avg_pool2d(v, s) if s != (1, 1) else v
    delta = block_dct(torch.minimum(torch.maximum(block_dct(m), lo), hi), inverse=True) - m
    if s != (1, 1):
        delta = delta.repeat_interleave(s[0], -2).repeat_interleave(s[1], -1)
    return v + delta


def _dykstra(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, s: tuple[int, int], h: int, w: int,
             tol: float, max_iter: int) -> torch.Tensor:
    """Dykstra's projection of x in range(R) (padded planes whose real part is (h, w)) onto
    range(R) & {box set}: alternate :func:`_box_step` (with its correction p carried) and the
    mean over copies, until the two iterates are within ``tol`` (max abs, 0-255 units; checked
    every 8 iterations to spare device syncs)."""
    p = torch.zeros_like(x)
    for i in range(max_iter):
        z = _box_step(x + p, lo, hi, s)
        p = x + p - z
        x = _fold_mean(z, h, w)
        if i % 8 == 0 and float((x - z).abs().max()) <= tol:
            break
    return x


def project_plane(c: torch.Tensor, k: torch.Tensor, table: np.ndarray, s: tuple[int, int],
                  tol: float = 0.05, max_iter: int = 1000) -> torch.Tensor:
    """P_C for planes c (B, n, H, W) (0-255 units, level-shifted) coded with stored k and
    ``table`` at subsampling s: closed form on every block inside the image; Dykstra on the
    last row and column of MCUs when H or W is not a multiple of 8 s (module docstring)."""
    q = _grid(table, k)
    lo, hi = (k - 0.5) * q, (k + 0.5) * q
    (h, w), (mh, mw) = c.shape[-2:], (8 * s[0], 8 * s[1])
    x = _pad(c, mh, mw)
    out = _box_step(x, lo, hi, s)
    top = x.shape[-2] - mh if h % mh else x.shape[-2]  # rows above the partial MCU row
    if h % mh:
        out[..., top:, :] = _dykstra(x[..., top:, :], lo[..., -8:, :], hi[..., -8:, :], s, h - top, w, tol, max_iter)
    if w % mw:
        left = x.shape[-1] - mw
        out[..., :top, left:] = _dykstra(x[..., :top, left:], lo[..., : top // s[0], -8:],
                                         hi[..., : top // s[0], -8:], s, top, w - left, tol, max_iter)
    return out[..., :h, :w]


def project_qcs(x: torch.Tensor, y: torch.Tensor, tables: list[np.ndarray], subsampling: str,
                tol: float = 0.05) -> torch.Tensor:
    """P_C(x): the nearest image to x (B, C in {1, 3}, H, W) in [0, 1] units, in the (Y, Cb, Cr)
    metric, whose JPEG coefficients (``tables``: [luma] or [luma, chroma] (8, 8) or 64 values)
    round to those of the decoded y (same shape). Not clamped to [0, 1]."""
    if x.shape != y.shape or x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg QCS: need x and y of one shape (B, 1 or 3, H, W), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    ks = quantized_coefficients(y, tables, subsampling)
    v = x * 255 - 128 if x.shape[1] == 1 else to_ycc(x)
    planes = [project_plane(v[:, :1], ks[0], tables[0], (1, 1), tol)]
    if x.shape[1] == 3:  # a grey file (one table) read as RGB has zero chroma
        planes.append(project_plane(v[:, 1:], ks[1], tables[1], SUBSAMPLING[subsampling], tol)
                      if len(ks) > 1 else torch.zeros_like(v[:, 1:]))
    v = torch.cat(planes, 1)
    return (v + 128) / 255 if x.shape[1] == 1 else from_ycc(v)
