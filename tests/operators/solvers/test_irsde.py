"""IR-SDE sampler: with the exact eps of a known x0 it returns x0 (Euler-Maruyama at T steps
to the last step's noise, the bridge sampler exactly at any nfe); the solver on tiny saved
weights is deterministic, sized by the blind scale, honest about NFE, and fails clearly."""
from __future__ import annotations

import math

import pytest
import torch
from solver_testkit import gen

from operators.degradations import Blind, sample_degradation
from operators.priors import irsde
from operators.priors.irsde_schedule import IRSDESchedule
from operators.solvers.irsde import IRSDESolverConfig, TRAIN_COMMAND, reverse_sde, solve_irsde

TINY = dict(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4)


def problem(seed: int = 0) -> tuple[IRSDESchedule, torch.Tensor, torch.Tensor]:
    sde = IRSDESchedule(T=100, lam=30 / 255)
    g = gen(seed)
    x0 = torch.rand(2, 3, 16, 16, generator=g)
    return sde, x0, (x0 + 0.2 * torch.randn(x0.shape, generator=g)).clamp(0, 1)


def oracle(sde: IRSDESchedule, x0: torch.Tensor, mu: torch.Tensor):
    """The exact eps of x_t given x0: (x_t - mean_t) / sigma_bar_t."""
    def eps(x_t, t):
        mean, std = sde.marginal(x0, mu, t)
        return (x_t - mean) / std
    return eps


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


def test_euler_maruyama_with_the_oracle_returns_x0():
    """At T = 100 steps the error is the last step's noise, sigma_1 sqrt(dt) ~ sigma_bar_1 (0.0022)."""
    sde, x0, mu = problem()
    errs = {n: rmse(reverse_sde(oracle(sde, x0, mu), sde, mu, n, gen(1)), x0) for n in (100, 50, 10)}
    assert errs[100] < 1.5 * float(sde.sigma_bar(1)) and errs[100] < 0.004
    assert errs[100] < errs[50] < errs[10] < 0.2 * rmse(mu, x0)  # coarser grids: larger EM error


@pytest.mark.parametrize("nfe", [100, 7, 1])
def test_posterior_sampler_with_the_oracle_is_exact(nfe):
    sde, x0, mu = problem()
    x = reverse_sde(oracle(sde, x0, mu), sde, mu, nfe, gen(1), sampler="posterior")
    assert rmse(x, x0) < 1e-5


def test_euler_at_t_steps_is_the_papers_loop():
    """nfe = T: the official sampler, written longhand with theta_t, sigma_t, eps drawn in order."""
    sde, x0, mu = problem()
    g = gen(2)
    x = mu + sde.lam * torch.randn(mu.shape, generator=g)
    for t in range(sde.T, 0, -1):
        theta, sig2 = float(sde.thetas[t]), float(sde.sigma2(t))
        score = -oracle(sde, x0, mu)(x, t) / float(sde.sigma_bar(t))
        z = torch.randn(x.shape, generator=g)
        x = x - (theta * (mu - x) - sig2 * score) * sde.dt - math.sqrt(sig2 * sde.dt) * z
    seen = []
    got = reverse_sde(oracle(sde, x0, mu), sde, mu, sde.T, gen(2), callback=seen.append)
    torch.testing.assert_close(got, x, rtol=0, atol=1e-6)
    assert [s["t"] for s in seen] == list(range(sde.T, 0, -1))


@pytest.mark.parametrize("nfe,sampler,rel", [(100, "euler", 0.03), (100, "posterior", 0.06)])
def test_untrained_network_samples_the_gaussian_residual_prior(nfe, sampler, rel):
    """Untrained: eps = c_skip (x_t - mu), the exact eps for x0 ~ N(mu, s^2 I), s = 0.1; the
    samples of a flat mu = 0.5 have mean 0.5 and std s (6,144 pixels; clamping ~5 s away).
    Measured std: euler 0.1006 at 100 steps (0.111 at 10); posterior 0.096 at 100 steps (its
    plug-in x0_hat drops the spread of x0 at coarse grids: 0.073 at 10)."""
    y = torch.full((2, 3, 32, 32), 0.5)
    out = solve_irsde(y, Blind(scale=1), None, nfe=nfe, generator=gen(0),
                      config={"weights": "untrained", "sampler": sampler})
    assert out.nfe == nfe and out.x.shape == y.shape
    assert float(out.x.mean()) == pytest.approx(0.5, abs=0.005)
    assert float(out.x.std()) == pytest.approx(0.1, rel=rel)


@pytest.fixture
def weights(tmp_path):
    def make(scale: int = 4, T: int = 20, scales: str | None = None) -> str:
        model = irsde.build(dict(TINY, scale=scale, T=T))
        g = gen(0)
        with torch.no_grad():  # non-zero output layers: eps depends on the input
            for p in model.parameters():
                if (p == 0).all():
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
        path = tmp_path / f"irsde_x{scale}_T{T}_{(scales or '').strip('[]').replace(', ', '_')}.safetensors"
        irsde.save(model, path, extra={"scales": scales} if scales else None)
        return str(path)
    return make


@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_solver_deterministic_sized_and_counted(weights, size):
    y = torch.rand(2, 3, *size, generator=gen(3))
    cfg = {"weights": weights()}
    a = solve_irsde(y, Blind(scale=4), None, nfe=5, generator=gen(4), config=cfg)
    b = solve_irsde(y, Blind(scale=4), None, nfe=5, generator=gen(4), config=cfg)
    c = solve_irsde(y, Blind(scale=4), None, nfe=5, generator=gen(5), config=cfg)
    assert a.x.shape == (2, 3, 4 * size[0], 4 * size[1]) and a.nfe == 5
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert float(a.x.min()) >= 0 and float(a.x.max()) <= 1
    assert a.extras["steps"] == [20, 16, 12, 8, 4, 0]


def test_solver_reads_only_the_scale_of_a_realesrgan_operator(weights):
    """A sampled realesrgan x2 operator gives the same restoration as blind x2 (same generator)."""
    g = gen(6)
    hq = torch.rand(1, 3, 16, 16, generator=g)
    op = sample_degradation("realesrgan", g, tuple(hq.shape), scale=2)
    y = op.measure(hq, g)
    cfg = IRSDESolverConfig(weights=weights(scale=2), sampler="posterior")
    a = solve_irsde(y, op, None, nfe=3, generator=gen(7), config=cfg)
    b = solve_irsde(y, Blind(scale=2), None, nfe=3, generator=gen(7), config=cfg)
    assert torch.equal(a.x, b.x) and a.x.shape == hq.shape


def test_solver_tiles_large_inputs(weights):
    y = torch.rand(1, 3, 10, 12, generator=gen(8))
    cfg = dict(weights=weights(), tile_max_pixels=400, tile_size=16, tile_overlap=4)
    out = solve_irsde(y, Blind(scale=4), None, nfe=4, generator=gen(9), config=cfg)
    assert out.x.shape == (1, 3, 40, 48) and out.nfe == 4 and bool(torch.isfinite(out.x).all())


def test_solver_errors(weights, tmp_path):
    y = torch.rand(1, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="restoray run configs/train-irsde.yaml"):
        solve_irsde(y, Blind(scale=4), None, nfe=4, generator=gen(0), config={"weights": str(tmp_path / "no.pt")})
    assert "configs/train-irsde.yaml" in TRAIN_COMMAND
    path = weights(scale=4, T=20)
    with pytest.raises(ValueError, match="trained for x4"):
        solve_irsde(y, Blind(scale=2), None, nfe=4, generator=gen(0), config={"weights": path})
    multi = weights(scale=4, T=20, scales="[4, 1]")  # the training job's record of its pair scales
    assert solve_irsde(y, Blind(scale=1), None, nfe=2, generator=gen(0), config={"weights": multi}).x.shape == y.shape
    with pytest.raises(ValueError, match="trained for x4, x1"):
        solve_irsde(y, Blind(scale=2), None, nfe=2, generator=gen(0), config={"weights": multi})
    with pytest.raises(ValueError, match="<= T = 20"):
        solve_irsde(y, Blind(scale=4), None, nfe=21, generator=gen(0), config={"weights": path})
    with pytest.raises(ValueError, match="sampler"):
        IRSDESolverConfig(sampler="ode")
    with pytest.raises(ValueError, match="unknown config key"):
        solve_irsde(y, Blind(scale=4), None, nfe=4, generator=gen(0), config={"weight": path})
    with pytest.raises(ValueError, match="explicit torch.Generator"):
        solve_irsde(y, Blind(scale=4), None, nfe=4, generator=None, config={"weights": path})
