"""SURE blending of two denoisers: the risk estimate matches the true MSE, the chosen weight is
the oracle's, and a blend never does worse than the better estimate; langevin_video uses it
with a video expert on Gaussian denoising."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from operators.solvers.sure_blend import sure_blend, sure_weights


def _blur(y: torch.Tensor, g=None) -> torch.Tensor:
    k = torch.ones(3, 1, 3, 3) / 9
    return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="circular"), k, groups=3)


def _signal(frames=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = _blur(_blur(torch.rand(frames, 3, size, size, generator=g)))  # smooth: blurring helps
    sigma = 0.1
    return x, x + sigma * torch.randn(x.shape, generator=g), sigma, g


def test_sure_is_the_mse_and_its_weight_the_oracles():
    x, y, sigma, g = _signal()
    shrink = lambda v, _g: 0.7 * v  # a linear map: div = 0.7 N
    out, info = sure_blend(y, sigma, shrink, _blur, g)
    for name, est in (("sure_1", 0.7 * y), ("sure_2", _blur(y)), ("sure_blend", out)):
        mse = (est - x).flatten(1).square().mean(1)
        assert torch.allclose(torch.tensor(info[name], dtype=torch.float64), mse.double(), rtol=0.05, atol=2e-4), name
    # the oracle weight: argmin_w ||(1 - w) f1 + w f2 - x||^2 per frame
    f1, f2 = 0.7 * y, _blur(y)
    d = (f2 - f1).flatten(1)
    oracle = (-((f1 - x).flatten(1) * d).sum(1) / d.square().sum(1)).clamp(0, 1)
    assert torch.allclose(torch.tensor(info["weights"]), oracle, atol=0.03)
    best = torch.minimum((f1 - x).square().mean(), (f2 - x).square().mean())
    assert (out - x).square().mean() <= best


def test_weights_go_to_the_better_estimate():
    x, y, sigma, _ = _signal(frames=1)
    exact = x.clone()
    w = sure_weights(y, exact, y, torch.zeros(1), torch.full((1,), float(y.numel())), sigma)
    assert float(w) < 0.02  # the identity (div N) is far worse than a perfect estimate: keep f1
    w = sure_weights(y, y, exact, torch.full((1,), float(y.numel())), torch.zeros(1), sigma)
    assert float(w) > 0.98


def test_stochastic_estimators_are_differentiated_along_one_draw():
    """f(y) = y + noise from the generator: with the same draws on y and y + eps b, the
    divergence is exactly N (the noise cancels), so SURE equals the true expected risk sigma^2."""
    x, y, sigma, g = _signal(frames=2, size=32)
    noisy_id = lambda v, gen: v + 0.05 * torch.randn(v.shape, generator=gen)
    _, info = sure_blend(y, sigma, noisy_id, noisy_id, g)
    assert all(abs(s - (sigma**2 + 0.05**2)) < 2e-3 for s in info["sure_1"])


def test_langevin_video_blends_the_expert_on_gaussian_denoising():
    from operators.degradations import build_degradation
    from operators.priors.base import GaussianPrior
    from operators.solvers import get_solver, solver_config

    class BlurExpert:  # a stand-in video denoiser with the VideoDenoiser interface
        sigma_min, sigma_max = 0.01, 0.3

        def denoise_video(self, frames, sigma):
            return _blur(frames)

    x, y, sigma, _ = _signal(frames=4, size=32)
    op = build_degradation({"name": "denoise", "noise_sigma": sigma})
    solve = lambda blend: get_solver("langevin_video")(
        y, op, GaussianPrior(), nfe=3, generator=torch.Generator().manual_seed(1),
        config=solver_config("langevin_video", expert_blend=blend), video_prior=BlurExpert())
    blended, plain = solve("sure"), solve("none")
    assert "sure" in blended.extras and "sure" not in plain.extras
    expert_alone = (_blur(y) - x).square().mean()
    assert (blended.x - x).square().mean() <= 1.02 * min(expert_alone, (plain.x - x).square().mean())
    assert blended.nfe == 2 * plain.nfe + 2  # both run twice (divergence) + the expert alone twice
