"""Math checks for every linear degradation: adjointness, prox optimality, A pinv(y) = y."""
from __future__ import annotations

import pytest
import torch

from operators.degradations import (
    Blur,
    Colorize,
    Compose,
    Denoise,
    Inpaint,
    Noise,
    SuperResolution,
    cg_prox,
)

G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731


def _ops():
    """(id, operator factory (H, W) -> op, valid (H, W) sizes, A onto with exact pinv?)."""
    n = Noise(sigma=0.05)
    odd = [(17, 23), (32, 20)]
    return [
        ("denoise", lambda hw: Denoise(noise=n), odd, True),
        ("blur-gauss", lambda hw: Blur(sigma=1.0, noise=n), odd, True),
        ("blur-aniso", lambda hw: Blur(sigma=(2.5, 0.8), angle=35.0, noise=n), odd, False),
        ("blur-motion", lambda hw: Blur(kind="motion", noise=n).bind(hw, G(3)), odd, False),
        ("blur-bigkernel", lambda hw: Blur(kind="kernel", kernel=torch.rand(31, 30, generator=G(1)).numpy(),
                                           noise=n), odd, False),
        ("colorize", lambda hw: Colorize(noise=n), odd, True),
        ("compose-blur-sr", lambda hw: Compose(ops=(Blur(sigma=1.5), SuperResolution(scale=2)), noise=Noise(0.5)),
         [(18, 22)], False),
        ("compose-single", lambda hw: Compose(ops=(SuperResolution(scale=2, mode="area"),), noise=n), [(10, 6)], True),
        ("inpaint-random", lambda hw: Inpaint(kind="random", fraction=0.5, noise=n).bind(hw, G(0)), odd, True),
        ("inpaint-box", lambda hw: Inpaint(kind="box", noise=n).bind(hw, G(0)), odd, True),
        ("inpaint-freeform", lambda hw: Inpaint(kind="freeform", noise=n).bind(hw, G(0)), odd, True),
        *[(f"sr-bicubic-x{s}", (lambda s: lambda hw: SuperResolution(scale=s, noise=n))(s),
           [(8 * s, 3 * s), (5 * s, 8 * s)], True) for s in (2, 3, 4, 8)],
        *[(f"sr-area-x{s}", (lambda s: lambda hw: SuperResolution(scale=s, mode="area", noise=n))(s),
           [(3 * s, 5 * s)], True) for s in (2, 3)],
        *[(f"sr-blurdec-x{s}", (lambda s: lambda hw: SuperResolution(scale=s, mode="blur_decimate", sigma=0.6 * s,
                                                                       noise=n))(s),
           [(6 * s, 5 * s)], True) for s in (2, 3, 4)],
    ]


CASES = [(name, f, hw, onto) for name, f, sizes, onto in _ops() for hw in sizes]
IDS = [f"{c[0]}-{c[2][0]}x{c[2][1]}" for c in CASES]


@pytest.mark.parametrize("name,factory,hw,onto", CASES, ids=IDS)
def test_adjoint(name, factory, hw, onto):
    op = factory(hw)
    x = torch.rand(2, 3, *hw, generator=G(1), dtype=torch.float64)
    ax = op.forward(x)
    y = torch.randn(ax.shape, generator=G(2), dtype=torch.float64)
    assert tuple(ax.shape) == op.output_shape(tuple(x.shape))
    lhs, rhs = (ax * y).sum(), (x * op.adjoint(y)).sum()
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)


@pytest.mark.parametrize("rho", [0.7, "batch"])
@pytest.mark.parametrize("name,factory,hw,onto", CASES, ids=IDS)
def test_prox_optimality(name, factory, hw, onto, rho):
    """Gradient of ||y - Ax||^2 / (2 s2) + rho/2 ||x - z||^2 at the returned x is ~0."""
    op = factory(hw)
    x0 = torch.rand(2, 3, *hw, generator=G(1), dtype=torch.float64)
    y = op.forward(x0) + 0.05 * torch.randn(op.output_shape(tuple(x0.shape)), generator=G(2), dtype=torch.float64)
    z = torch.rand(x0.shape, generator=G(3), dtype=torch.float64)
    r = torch.tensor([0.3, 40.0], dtype=torch.float64) if rho == "batch" else rho
    prox = (lambda *a: cg_prox(op, *a, iters=100, tol=1e-12)) if name == "compose-blur-sr" else op.prox
    x = prox(z, y, r).requires_grad_()
    rv = r.view(-1, 1, 1, 1) if torch.is_tensor(r) else r
    obj = ((y - op.forward(x)) ** 2).sum() / (2 * op.prox_sigma2) + (rv / 2 * (x - z) ** 2).sum()
    (g,) = torch.autograd.grad(obj, x)
    scale = (op.adjoint(op.forward(z) - y)).abs().max() / op.prox_sigma2  # gradient size at z
    assert g.abs().max() <= 1e-7 * scale


@pytest.mark.parametrize("name,factory,hw,onto", [c for c in CASES if c[3]], ids=[i for i, c in zip(IDS, CASES) if c[3]])
def test_pinv_right_inverse(name, factory, hw, onto):
    op = factory(hw)
    x = torch.rand(2, 3, *hw, generator=G(1), dtype=torch.float64)
    y = op.forward(x)
    if name.startswith("inpaint"):  # onto the observed pixels: y arbitrary there, 0 elsewhere
        y = op.forward(torch.randn(x.shape, generator=G(4), dtype=torch.float64))
    else:
        y = torch.randn(y.shape, generator=G(4), dtype=torch.float64)
    torch.testing.assert_close(op.forward(op.pinv(y)), y, rtol=0, atol=1e-9)


def test_pinv_is_least_squares_for_aniso_blur():
    """pinv solves A^T A x = A^T y where it keeps frequencies (|K| > tol)."""
    op = Blur(sigma=(2.5, 0.8), angle=35.0)
    y = torch.rand(1, 1, 16, 16, generator=G(0), dtype=torch.float64)
    x = op.pinv(y)
    torch.testing.assert_close(op.adjoint(op.forward(x)), op.adjoint(y), rtol=0, atol=1e-8)


def test_float32_and_batch_of_rho_shapes():
    op = SuperResolution(scale=2)
    z = torch.rand(3, 3, 8, 8)
    y = op.forward(z)
    assert op.prox(z, y, torch.ones(3)).dtype == torch.float32
    with pytest.raises(ValueError, match="rho"):
        op.prox(z, y, torch.ones(2))


def test_sr_rejects_non_divisible_sizes():
    with pytest.raises(ValueError, match="divisible by the scale 4.*mod-crop"):
        SuperResolution(scale=4).forward(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="scale must be one of"):
        SuperResolution(scale=5)


def test_tensors_follow_input_dtype_and_cache_is_not_pickled():
    import pickle

    for op in (Blur(sigma=1.0), Inpaint(kind="box").bind((12, 12), G(0)), SuperResolution(scale=2, mode="blur_decimate")):
        for dtype in (torch.float32, torch.float64):
            x = torch.rand(1, 3, 12, 12, dtype=dtype)
            assert op.forward(x).dtype == dtype and op.adjoint(op.forward(x)).dtype == dtype
        assert op.to("cpu", torch.float64) is op
        clone = pickle.loads(pickle.dumps(op))
        assert "_tensor_cache" in op.__dict__ and "_tensor_cache" not in clone.__dict__ and clone == op
