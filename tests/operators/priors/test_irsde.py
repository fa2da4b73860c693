"""IR-SDE schedule and network: closed-form identities of the mean-reverting SDE, its marginal
against a fine Euler-Maruyama simulation, x*_{t-1} against a brute-force posterior mean,
and the model contract (any size, save / load, config errors, the loss trains)."""
from __future__ import annotations

import math

import pytest
import torch

from operators.degradations import sample_degradation
from operators.priors import irsde
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, save_edm_unet
from operators.priors.irsde_schedule import IRSDESchedule

TINY = dict(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4)
SDE = IRSDESchedule(T=100, lam=30 / 255)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def tiny_model(scale: int = 4, seed: int = 0) -> irsde.IRSDENet:
    model = irsde.build(dict(TINY, scale=scale))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the UNet zero-inits its output layers: make eps depend on the weights
        for p in model.parameters():
            if (p == 0).all():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def test_schedule_identities():
    assert math.exp(-float(SDE.thetabar[-1]) * SDE.dt) == pytest.approx(0.005, rel=1e-12)
    assert float(SDE.decay(SDE.T)) == pytest.approx(0.005, rel=1e-12)
    assert float(SDE.thetabar[0]) == 0.0
    # the official code's numbers at T = 100 (cosine 1 - alphabar on T + 2 steps, s = 0.008)
    assert float(SDE.thetas[1]) == pytest.approx(0.0016946, rel=1e-4)
    assert float(SDE.thetabar[-1]) == pytest.approx(50.8994, rel=1e-5) and SDE.dt == pytest.approx(0.104094, rel=1e-5)
    torch.testing.assert_close(SDE.thetabar[1:] - SDE.thetabar[:-1], SDE.thetas[1:], rtol=0, atol=1e-12)
    assert bool((SDE.thetas[1:] > 0).all()) and bool((SDE.thetas[1:].diff() > 0).all())  # cosine: increasing
    t = torch.tensor([1, 37, 100])
    torch.testing.assert_close(SDE.sigma2(t).flatten(), 2 * SDE.lam**2 * SDE.thetas[t])
    assert float(SDE.sigma_bar(SDE.T)) == pytest.approx(SDE.lam * math.sqrt(1 - 0.005**2), rel=1e-12)
    assert SDE.grid(SDE.T) == list(range(SDE.T, -1, -1))
    assert SDE.grid(7)[0] == SDE.T and SDE.grid(7)[-1] == 0 and len(set(SDE.grid(7))) == 8


@pytest.mark.parametrize("t", [10, 100])
def test_marginal_matches_fine_euler_maruyama_simulation(t):
    """dx = theta_t (mu - x) dt + sigma_t dw, 10 EM substeps per step, 40k scalar paths."""
    g = torch.Generator().manual_seed(0)
    x0, mu, n, sub = 0.8, 0.2, 40_000, 10
    x = torch.full((n,), x0, dtype=torch.float64)
    h = SDE.dt / sub
    for i in range(1, t + 1):
        theta, sigma = float(SDE.thetas[i]), math.sqrt(float(SDE.sigma2(i)))
        for _ in range(sub):
            x = x + theta * (mu - x) * h + sigma * math.sqrt(h) * torch.randn(n, generator=g, dtype=torch.float64)
    mean, std = SDE.marginal(torch.tensor(x0, dtype=torch.float64), torch.tensor(mu, dtype=torch.float64), t)
    assert float(x.mean()) == pytest.approx(float(mean), abs=5 * float(std) / math.sqrt(n) + 1e-3)
    assert float(x.var()) == pytest.approx(float(std) ** 2, rel=0.03)


def brute_force_bridge(t: int, s: int, x_t: float, x0: float, mu: float) -> tuple[float, float]:
    """E and Var of x_s given x_t and x0 by quadrature: p(x_s | x0) p(x_t | x_s), both Gaussian
    transitions of the SDE (exact for its piecewise-constant theta)."""
    xs = torch.linspace(-1.5, 2.5, 400_001, dtype=torch.float64)
    ms, ss = SDE.marginal(torch.tensor(x0, dtype=torch.float64), torch.tensor(mu, dtype=torch.float64), s)
    A = math.exp(-(float(SDE.thetabar[t]) - float(SDE.thetabar[s])) * SDE.dt)
    log_p = -0.5 * ((xs - ms) / ss) ** 2 - 0.5 * (x_t - mu - (xs - mu) * A) ** 2 / (SDE.lam**2 * (1 - A**2))
    w = torch.exp(log_p - log_p.max())
    mean = float((w * xs).sum() / w.sum())
    return mean, float((w * (xs - mean) ** 2).sum() / w.sum())


@pytest.mark.parametrize("t,s,x_t", [(2, 1, 0.7), (30, 29, 0.5), (100, 99, 0.1), (60, 20, 0.4), (100, 50, 0.3)])
def test_optimal_prev_is_the_bridge_posterior_mean(t, s, x_t):
    x0, mu = 0.8, 0.2
    want_mean, want_var = brute_force_bridge(t, s, x_t, x0, mu)
    f = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    got = float(SDE.optimal_prev(f(x_t), f(x0), f(mu), t, s))
    assert got == pytest.approx(want_mean, abs=1e-8)
    eps = (f(x_t) - SDE.marginal(f(x0), f(mu), t)[0]) / SDE.sigma_bar(t)  # the exact eps: x0_hat = x0
    assert float(SDE.posterior_step(f(x_t), eps, f(mu), t, s, f(0.0))) == pytest.approx(want_mean, abs=1e-8)
    std = float(SDE.posterior_step(f(x_t), eps, f(mu), t, s, f(1.0))) - got
    assert std**2 == pytest.approx(want_var, rel=1e-4)
    if s == t - 1:  # the default s is t - 1
        assert float(SDE.optimal_prev(f(x_t), f(x0), f(mu), t)) == got


def test_optimal_prev_at_t1_is_x0():
    x_t, x0, mu = torch.rand(3, 2, 2, 2, dtype=torch.float64).unbind(0)
    torch.testing.assert_close(SDE.optimal_prev(x_t[None], x0[None], mu[None], 1), x0[None], rtol=0, atol=1e-15)


def test_reverse_step_is_the_papers_euler_maruyama_step():
    """s = t - 1: x - [theta_t (mu - x) - sigma_t^2 score] dt - sigma_t sqrt(dt) z, score = -eps / sigma_bar_t."""
    g = torch.Generator().manual_seed(1)
    x, mu, eps, z = (torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(4))
    t = torch.tensor([5, 80])
    theta, sig2 = SDE.thetas[t].view(-1, 1, 1, 1), 2 * SDE.lam**2 * SDE.thetas[t].view(-1, 1, 1, 1)
    score = -eps / SDE.sigma_bar(t)
    want = x - (theta * (mu - x) - sig2 * score) * SDE.dt - sig2.sqrt() * math.sqrt(SDE.dt) * z
    torch.testing.assert_close(SDE.reverse_step(x, eps, mu, t, t - 1, z), want, rtol=1e-12, atol=1e-12)


def test_schedule_rejects_bad_steps():
    with pytest.raises(ValueError, match="0..100"):
        SDE.decay(101)
    with pytest.raises(ValueError, match="s < t"):
        SDE.optimal_prev(torch.zeros(1), torch.zeros(1), torch.zeros(1), 5, 5)
    with pytest.raises(ValueError, match="steps <= T"):
        SDE.grid(101)


@pytest.mark.parametrize("size", [(16, 16), (37, 29), (5, 9)])
def test_eps_any_size_and_depends_on_t(size):
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    x_t, mu = torch.rand(2, 3, *size, generator=g), torch.rand(2, 3, *size, generator=g)
    e1, e2 = model.eps(x_t, mu, torch.tensor([3, 90])), model.eps(x_t, mu, 3)
    assert e1.shape == (2, 3, *size)
    torch.testing.assert_close(e1[0], e2[0])
    assert not torch.allclose(e1[1], e2[1])
    torch.testing.assert_close(model.denoise(torch.cat([x_t, mu], 1), torch.tensor([3.0, 90.0])), e1)
    assert model.nfe.forward == 1


@pytest.mark.parametrize("t", [1, 30, 100])
def test_preconditioning_is_the_wiener_estimate_with_unit_scales(t):
    """x_t - mu = B r + sigma_bar n, r ~ N(0, s^2): c_in^2 Var(x_t - mu) = 1, c_skip (x_t - mu) is the
    least-squares estimate of n and its error has variance c_out^2 (so F targets unit variance)."""
    model = irsde.build(dict(TINY, residual_std=0.1))
    g = torch.Generator().manual_seed(2)
    r, n = torch.randn(2, 10_000, generator=g, dtype=torch.float64)
    r, n = 0.1 * r / r.pow(2).mean().sqrt(), n / n.pow(2).mean().sqrt()  # exact second moments s^2, 1
    r, n = torch.cat([r, -r]), torch.cat([n, n])  # antithetic r: the r n cross terms cancel exactly
    y = model.schedule.decay(t) * r + model.schedule.sigma_bar(t) * n
    c_in, c_skip, c_out = (float(c) for c in model.preconditioning(torch.tensor([t]), y))
    assert c_in**2 * float(y.pow(2).mean()) == pytest.approx(1, rel=1e-9)
    assert c_skip == pytest.approx(float((y * n).mean() / (y * y).mean()), rel=1e-9)
    assert float((n - c_skip * y).pow(2).mean()) == pytest.approx(c_out**2, rel=1e-9)


def test_eps_without_f_is_the_skip_and_plain_network_is_f():
    g = torch.Generator().manual_seed(0)
    x_t, mu = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    model = irsde.build(TINY)  # output layer zero-initialised: F = 0
    c_in, c_skip, c_out = model.preconditioning(torch.tensor([40]), x_t)
    torch.testing.assert_close(model.eps(x_t, mu, 40), c_skip * (x_t - mu))
    plain = irsde.build(dict(TINY, precondition=False))
    torch.nn.init.normal_(plain.unet.out.weight, std=0.1)
    f = plain.unet.backbone(torch.cat([x_t - mu, mu], 1), torch.tensor([0.4]))
    torch.testing.assert_close(plain.eps(x_t, mu, 40), f)


def test_build_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="lambda"):
        irsde.build({"lambda": 0.1})
    with pytest.raises(ValueError, match="scale"):
        irsde.build({"scale": 3})
    with pytest.raises(ValueError, match="groups"):
        irsde.build({"channels": [12, 24], "blocks": [1, 1]})
    default = irsde.build({})
    assert sum(p.numel() for p in default.parameters()) < 1_500_000
    assert default.config.T == 100 and default.config.lam == pytest.approx(30 / 255)


def test_save_load_round_trip_and_refuses_other_kinds(tmp_path):
    model = tiny_model(scale=2)
    irsde.save(model, tmp_path / "m.safetensors", extra={"steps": "3"})
    back = irsde.load(tmp_path / "m.safetensors")
    assert back.config == model.config and not back.training
    x_t, mu = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)
    torch.testing.assert_close(back.eps(x_t, mu, 40), model.eps(x_t, mu, 40))
    save_edm_unet(EDMUNet(EDMUNetConfig(**TINY)), tmp_path / "edm.safetensors")
    with pytest.raises(ValueError, match="not an IR-SDE model file"):
        irsde.load(tmp_path / "edm.safetensors")
    with pytest.raises(FileNotFoundError):
        irsde.load(tmp_path / "absent.safetensors")


def realesrgan_pairs(scale: int = 4, batch: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    hq = torch.nn.functional.interpolate(torch.rand(batch, 3, size // 4, size // 4, generator=g), size=size,
                                         mode="bicubic", align_corners=False).clamp(0, 1)
    op = sample_degradation("realesrgan", g, tuple(hq.shape), scale=scale)
    return hq, op.measure(hq, g)


class Wrapper(torch.nn.Module):
    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args):
        return self.module(*args)


def test_training_loss_is_deterministic_and_checks_shapes():
    model, (hq, lq) = tiny_model(), realesrgan_pairs()
    with torch.no_grad():
        a = irsde.training_loss(model, hq, lq, torch.Generator().manual_seed(5))
        b = irsde.training_loss(model, hq, lq, torch.Generator().manual_seed(5))
    assert a.ndim == 0 and float(a) == float(b) and float(a) > 0
    with torch.no_grad():  # through a DDP-style wrapper (``.module``, forward delegated): the same loss
        c = irsde.training_loss(Wrapper(model), hq, lq, torch.Generator().manual_seed(5))
    assert float(c) == float(a)
    with pytest.raises(ValueError, match="with s in"):
        irsde.training_loss(model, hq, hq[..., ::8, ::8], torch.Generator())
    with torch.no_grad():  # pairs of another scale train the same network (it sees mu at the HQ size)
        assert float(irsde.training_loss(model, hq, hq, torch.Generator().manual_seed(5))) > 0


def test_training_lowers_the_loss():
    """30 Adam steps on fixed realesrgan x4 pairs; the loss on 4 fixed draws of (t, noise) drops
    (measured: x0.74-0.77 of the loss before training over 5 init seeds)."""
    torch.manual_seed(0)  # test fixture only: nn layers initialise from the global RNG
    model, (hq, lq) = irsde.build(dict(TINY, scale=4)), realesrgan_pairs()
    def held_out() -> float:
        with torch.no_grad():
            draws = (torch.Generator().manual_seed(99 + k) for k in range(4))
            return sum(float(irsde.training_loss(model, hq, lq, g)) for g in draws)

    before = held_out()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        opt.zero_grad()
        irsde.training_loss(model, hq, lq, g).backward()
        opt.step()
    after = held_out()
    print(f"held-out loss {before:.5f} -> {after:.5f}")
    assert after < 0.85 * before
