"""JPEG quantization constraint set: the projection is feasible, idempotent and optimal; the
stored coefficients are recovered from Pillow-decoded files; file tables round-trip.

Feasibility is checked against an independent numpy model of the encoder (edge padding,
box-mean chroma, scipy's orthonormal DCT), not against the module's own helpers."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.fft import dctn

from operators.degradations import JPEG, Noise, build_degradation
from operators.degradations.jpeg import file_tables, jpeg_roundtrip, quant_table
from operators.degradations.jpeg_qcs import SUBSAMPLING, quantized_coefficients, to_ycc
from tests.conftest import shared_data

CASES = [(q, s, c) for q in (10, 50) for s, c in (("4:2:0", 3), ("4:4:4", 3), ("4:2:2", 3), ("4:4:4", 1))]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _crop(h: int, w: int, c: int = 3) -> torch.Tensor:
    """(1, c, h, w) float64 crop of CBSD68/102061.png (a textured scene)."""
    a = np.asarray(Image.open(shared_data() / "eval" / "CBSD68" / "102061.png").convert("RGB" if c == 3 else "L"))
    a = a[100:100 + h, 150:150 + w]
    return torch.from_numpy(a.reshape(h, w, c).copy()).permute(2, 0, 1)[None].double() / 255


def _coefficients(x: torch.Tensor, subsampling: str) -> list[np.ndarray]:
    """The encoder's DCT coefficients of x (1, C, H, W) per plane, in numpy: edge padding to
    the MCU, s x s box means for chroma, 8x8 orthonormal DCT. [(h/8, w/8, 8, 8), ...]."""
    v = (x[0] * 255 - 128).numpy() if x.shape[1] == 1 else to_ycc(x)[0].numpy()
    s = SUBSAMPLING[subsampling] if x.shape[1] == 3 else (1, 1)
    out = []
    for i, plane in enumerate(v):
        f = (1, 1) if i == 0 else s
        h, w = plane.shape
        p = np.pad(plane, ((0, -h % (8 * f[0])), (0, -w % (8 * f[1]))), mode="edge")
        p = p.reshape(p.shape[0] // f[0], f[0], p.shape[1] // f[1], f[1]).mean((1, 3))
        blocks = p.reshape(p.shape[0] // 8, 8, p.shape[1] // 8, 8).transpose(0, 2, 1, 3)
        out.append(dctn(blocks, axes=(2, 3), norm="ortho"))
    return out


def _bounds(y: torch.Tensor, op: JPEG) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(k, Q)] per plane from the decoded y, k as stored (recovered), Q tiled like k."""
    ks = quantized_coefficients(y, op.quant_tables(), op.subsampling)
    ks = [ks[0][0, 0]] + ([ks[1][0, 0], ks[1][0, 1]] if len(ks) > 1 else [])
    out = []
    for i, k in enumerate(ks):
        k = k.numpy().reshape(k.shape[0] // 8, 8, k.shape[1] // 8, 8).transpose(0, 2, 1, 3)
        out.append((k, op.quant_tables()[min(i, 1)]))
    return out


def _violation(x: torch.Tensor, y: torch.Tensor, op: JPEG) -> float:
    """Largest distance (in quantization steps) of x's coefficients outside [k - 1/2, k + 1/2]."""
    worst = 0.0
    for c, (k, q) in zip(_coefficients(x, op.subsampling), _bounds(y, op)):
        worst = max(worst, float(np.max(np.abs(c / q - k) - 0.5)))
    return worst


def _setup(q: int, subsampling: str, c: int, h: int, w: int):
    x = _crop(h, w, c)
    op = JPEG(quality=q, subsampling=subsampling)
    y = op.forward(x).double()
    z = (y + 0.15 * torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype))
    return x, op, y, z


@pytest.mark.parametrize("q,subsampling,c", CASES)
def test_projection_is_feasible_idempotent_and_keeps_the_file(q, subsampling, c):
    """Block-aligned sizes: exact (float64 round-off)."""
    x, op, y, z = _setup(q, subsampling, c, 64, 96)
    p = op.project(z, y)
    assert _violation(p, y, op) < 1e-9 and _violation(z, y, op) > 0.1
    assert torch.allclose(op.project(p, y), p, atol=1e-11, rtol=0)
    # a decoded file lies in its own set (subsampled chroma: within uint8 rounding, the
    # decoder's upsampling not being the encoder's box mean), the original within libjpeg's
    # integer rounding
    tol = 1e-11 if subsampling == "4:4:4" else 0.5 / 255
    assert torch.allclose(op.project(y, y), y, atol=tol, rtol=0)
    assert (op.project(x, y) - x).pow(2).mean() < 1e-5  # > 50 dB


@pytest.mark.parametrize("q,subsampling,c", [(10, "4:2:0", 3), (50, "4:2:0", 3), (50, "4:4:4", 1)])
def test_odd_sizes_are_projected_to_tolerance(q, subsampling, c):
    """97 x 61: the partial edge blocks go through Dykstra's iterations (tol 0.05 / 255)."""
    x, op, y, z = _setup(q, subsampling, c, 97, 61)
    p = op.project(z, y)
    assert p.shape == z.shape and _violation(p, y, op) < 0.02 and _violation(z, y, op) > 0.1
    assert (op.project(p, y) - p).abs().max() < 0.2 / 255
    assert (p - z).pow(2).mean() < (y - z).pow(2).mean()  # y is feasible: p is at least as near


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0"])
def test_projection_is_the_nearest_point_kkt(subsampling):
    """Optimality in the (Y, Cb, Cr) metric: the correction lives in the span of the
    constraint's rows (for 4:2:0: constant on each 2 x 2 box) and, per coefficient, is
    nonzero only at an active bound with the sign of the violation (KKT of a box)."""
    _, op, y, z = _setup(50, subsampling, 3, 64, 64)
    p = op.project(z, y)
    d = (to_ycc(z) - to_ycc(p))[0].numpy()
    if subsampling == "4:2:0":
        chroma = d[1:].reshape(2, 32, 2, 32, 2)
        assert np.abs(chroma - chroma[:, :, :1, :, :1]).max() < 1e-9
    for cz, cp, (k, q) in zip(_coefficients(z, subsampling), _coefficients(p, subsampling), _bounds(y, op)):
        r, at_hi, at_lo = cz - cp, np.isclose(cp / q, k + 0.5), np.isclose(cp / q, k - 0.5)
        assert np.all((np.abs(r) < 1e-9) | (r > 0) & at_hi | (r < 0) & at_lo)
        assert (np.abs(r) > 1e-6).any()


def test_random_feasible_points_are_farther():
    """Variational inequality <z - P z, w - P z> <= 0 for feasible w (4:4:4, Y Cb Cr metric)."""
    _, op, y, z = _setup(10, "4:4:4", 3, 32, 32)
    p = op.project(z, y)
    g = torch.Generator().manual_seed(2)
    for _ in range(20):
        w = op.project(p + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype), y)
        inner = ((to_ycc(z) - to_ycc(p)) * (to_ycc(w) - to_ycc(p))).sum()
        assert inner < 1e-6 and (to_ycc(z) - to_ycc(w)).norm() >= (to_ycc(z) - to_ycc(p)).norm()


@pytest.mark.parametrize("q,subsampling", [(10, "4:2:0"), (50, "4:2:0"), (50, "4:4:4")])
def test_stored_coefficients_are_recovered_from_the_decoded_file(q, subsampling):
    """k from the decoded y matches the encoder's k of the original (luma and chroma); the
    chroma of 4:2:0 needs the inverse of libjpeg's upsampling, not the box mean of y."""
    x = _crop(96, 96)
    op = JPEG(quality=q, subsampling=subsampling)
    y = op.forward(x).double()
    for c, (k, t) in zip(_coefficients((x * 255).round() / 255, subsampling), _bounds(y, op)):
        assert np.mean(np.round(c / t) == k) > 0.985


def test_grey_file_tables_read_as_rgb_keep_the_image_grey():
    x = _crop(40, 48)
    data = io.BytesIO()
    Image.fromarray((x[0, 0].numpy() * 255).round().astype(np.uint8)).save(data, "JPEG", quality=20)
    found = file_tables(data.getvalue())
    assert found == {"tables": [quant_table(20, False).astype(int).ravel().tolist()], "subsampling": "4:4:4"}
    op = JPEG(**found)
    y = op.forward(x)  # coded as grey, decoded to RGB
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2])
    p = op.project(x.float(), y)
    assert (p[:, 0] - p[:, 2]).abs().max() < 1e-5 and torch.allclose(op.project(p, y), p, atol=1e-5)


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
def test_file_tables_round_trip_through_the_spec_and_the_encoder(subsampling):
    x = _crop(40, 56)
    a = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    data = io.BytesIO()
    Image.fromarray(a).save(data, "JPEG", quality=37, subsampling=subsampling)
    found = file_tables(data.getvalue())
    assert found["subsampling"] == subsampling
    assert found["tables"] == [quant_table(37, c).astype(int).ravel().tolist() for c in (False, True)]
    op = JPEG(**found)
    assert build_degradation(op.spec()) == op and op.spec()["tables"] == found["tables"]
    assert torch.equal(op.forward(x), jpeg_roundtrip(x, 37, subsampling))  # same tables, same file
    assert "tables" not in JPEG(quality=37).spec()  # specs without tables are unchanged
    png = io.BytesIO()
    Image.fromarray(a).save(png, "PNG")
    assert file_tables(png.getvalue()) is None


def test_exact_prox_only_without_noise():
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert JPEG(50).exact_prox and not JPEG(50, noise=Noise(sigma=0.01)).exact_prox
    assert torch.equal(JPEG(50).prox(y, y, 1.0), JPEG(50).prox(y, y, 1e3))  # rho-free
    with pytest.raises(NotImplementedError, match="noise"):
        JPEG(50, noise=Noise(sigma=0.01)).prox(y, y, 1.0)
    with pytest.raises(ValueError, match="tables"):
        JPEG(tables=[[0] * 64])


def test_quality_tables_are_libjpegs_at_every_quality():
    """jpeg_quality_scaling divides 5000 by q in integers (q = 37: 135, not 135.1)."""
    im = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    for q in range(1, 101):
        data = io.BytesIO()
        im.save(data, "JPEG", quality=q)
        with Image.open(data) as dec:
            for i in (0, 1):
                np.testing.assert_array_equal(np.reshape(dec.quantization[i], (8, 8)), quant_table(q, i == 1))


@pytest.mark.parametrize("spec", [{"quality": 30, "subsampling": "4:2:2"},
                                  {"tables": [[12] * 64, [30] * 64], "subsampling": "4:2:0"}])
def test_surrogate_follows_the_real_codec_with_4_2_2_and_explicit_tables(spec):
    x = _crop(40, 56)
    op = JPEG(**spec)
    real = op.forward(x)
    mse = lambda a, b: float((a - b).pow(2).mean())  # noqa: E731
    assert mse(op.surrogate(x), real) < 0.3 * mse(x, real)  # measured 0.03, 0.15
