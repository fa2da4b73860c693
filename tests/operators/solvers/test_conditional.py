from __future__ import annotations

import math

import pytest
import torch

from operators.degradations.blind import Blind, upsample
from operators.priors.conditional import ConditionalConfig, ConditionalPrior, ConditionalUNet, build, save
from operators.priors.paths import shipped_weights
from operators.solvers import common
from operators.solvers.conditional import (
    ConditionalSolverConfig,
    sample_conditional,
    solve_conditional,
    step_plan,
)

TINY = {"channels": [8, 16], "blocks": [1, 1], "emb_dim": 16, "fourier_features": 8, "groups": 4}


class Oracle(ConditionalUNet):
    """Knows the answer: D(x, sigma | mu) = hq (network space) whatever x, sigma, mu."""

    def __init__(self, hq: torch.Tensor):
        super().__init__(ConditionalConfig(unet=TINY))
        self.hq = 2 * hq - 1

    def forward(self, x, sigma, mu):
        return self.hq.expand_as(x)


class Gaussian(ConditionalUNet):
    """The exact denoiser of x ~ N(mu, s^2 I): D = mu + (x - mu) s^2 / (s^2 + sigma^2)."""

    def __init__(self, s: float):
        super().__init__(ConditionalConfig(unet=TINY))
        self.s = s

    def forward(self, x, sigma, mu):
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return mu + (x - mu) * self.s**2 / (self.s**2 + sigma**2)


def tiny_weights(tmp_path, scale: int = 4):
    torch.manual_seed(0)
    net = build({"scale": scale, "unet": TINY})
    with torch.no_grad():  # random output layer: F != 0
        net.out.weight.normal_(0, 0.1)
    path = tmp_path / f"c{scale}.safetensors"
    save(net, path)
    return str(path)


@pytest.mark.parametrize("heun", [True, False])
def test_step_plan_spends_exactly_the_budget(heun):
    for nfe in range(1, 14):
        plan = step_plan(nfe, heun)
        assert sum(2 if h else 1 for h in plan) == nfe and not plan[-1]
        assert any(plan) == (heun and nfe >= 3)


@pytest.mark.parametrize("heun,churn", [(True, 0.0), (False, 0.0), (True, 2.0)])
def test_oracle_model_returns_hq_and_counts_nfe(heun, churn):
    g = torch.Generator().manual_seed(0)
    hq, y = torch.rand(2, 3, 12, 20, generator=g), torch.rand(2, 3, 3, 5, generator=g)
    prior = common.prepare_prior(ConditionalPrior(Oracle(hq)), ConditionalSolverConfig())
    cfg = ConditionalSolverConfig(heun=heun, churn=churn)
    x = sample_conditional(prior, y, 4, step_plan(6, heun), cfg, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, hq, rtol=0, atol=1e-5)
    assert prior.nfe.forward == 6


def test_heun_integrates_the_gaussian_flow_ode_to_second_order():
    """x ~ N(mu, s^2): the probability-flow ODE maps x_T = mu + sigma_max n to
    mu + s sigma_max / sqrt(s^2 + sigma_max^2) n (image units s = s_net / 2)."""
    s_net, cfg = 0.4, ConditionalSolverConfig(sigma_max=2.0, sigma_min=0.002)
    y = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    mu = upsample(y, (16, 16))
    n = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    s = s_net / 2
    exact = mu + s * cfg.sigma_max / math.sqrt(s**2 + cfg.sigma_max**2) * n
    errors = {}
    for heun in (True, False):
        for nfe in (21, 41):
            prior = ConditionalPrior(Gaussian(s_net))
            x = sample_conditional(prior, y, 4, step_plan(nfe, heun), cfg, torch.Generator().manual_seed(3))
            errors[heun, nfe] = float((x - exact).abs().max())
            assert prior.nfe.forward == nfe
    # halving the step: Heun's error / 4 (measured 0.0325 -> 0.0076), Euler's / 2 (0.052 -> 0.027)
    assert errors[True, 41] < 0.01 and errors[True, 21] / errors[True, 41] > 3.5
    assert 1.5 < errors[False, 21] / errors[False, 41] < 2.5


def test_tiles_agree_with_whole_image_for_a_pointwise_model():
    y = torch.rand(1, 3, 20, 18, generator=torch.Generator().manual_seed(0))
    out = []
    for max_pixels in (10**6, 900):
        cfg = ConditionalSolverConfig(tile_max_pixels=max_pixels, tile_size=40, tile_overlap=12)
        prior = common.prepare_prior(ConditionalPrior(Gaussian(0.3)), cfg)
        out.append(sample_conditional(prior, y, 4, step_plan(5, True), cfg, torch.Generator().manual_seed(2)))
        assert prior.nfe.forward == 5
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=5e-5)


@pytest.mark.parametrize("size,scale", [((7, 9), 4), ((5, 6), 2), ((11, 8), 1)])
def test_solve_sizes_range_and_nfe(tmp_path, size, scale):
    y = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    weights = tiny_weights(tmp_path, scale)
    for nfe, heun, steps in ((1, False, 1), (4, False, 4), (4, True, 3), (7, True, 4)):
        out = solve_conditional(y, Blind(scale), None, nfe=nfe, generator=torch.Generator().manual_seed(1),
                                config={"weights": weights, "heun": heun})
        assert out.x.shape == (2, 3, size[0] * scale, size[1] * scale) and out.nfe == nfe
        assert out.extras["steps"] == steps and 0 <= out.x.min() and out.x.max() <= 1


@pytest.mark.parametrize("churn", [0.0, 1.0])
def test_solve_is_deterministic_given_the_generator(tmp_path, churn):
    y, cfg = torch.rand(1, 3, 6, 6), {"weights": tiny_weights(tmp_path), "churn": churn}
    runs = [solve_conditional(y, Blind(4), None, nfe=5, generator=torch.Generator().manual_seed(s), config=cfg).x
            for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_realesrgan_operator_is_seen_blind(tmp_path):
    from operators.degradations import sample_degradation

    g = torch.Generator().manual_seed(0)
    op = sample_degradation("realesrgan", g, (1, 3, 32, 32), scale=4)
    y = op.measure(torch.rand(1, 3, 32, 32, generator=g), g)
    out = solve_conditional(y, op, None, nfe=3, generator=g, config={"weights": tiny_weights(tmp_path)})
    assert out.x.shape == (1, 3, 32, 32)


def test_missing_weights_and_wrong_scale(tmp_path):
    y = torch.rand(1, 3, 4, 4)
    with pytest.raises(FileNotFoundError, match="restoray run configs/train-conditional.yaml"):
        solve_conditional(y, Blind(4), None, nfe=2, generator=torch.Generator(),
                          config={"weights": str(tmp_path / "absent.safetensors")})
    if not shipped_weights("blind_conditional").is_file():
        with pytest.raises(FileNotFoundError, match="blind_conditional.safetensors"):
            solve_conditional(y, Blind(4), None, nfe=2, generator=torch.Generator())
    with pytest.raises(ValueError, match="x4.*x2"):
        solve_conditional(y, Blind(2), None, nfe=2, generator=torch.Generator(),
                          config={"weights": tiny_weights(tmp_path, 4)})


def test_config_validation():
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        ConditionalSolverConfig(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="churn"):
        ConditionalSolverConfig(churn=-1)
    with pytest.raises(ValueError, match="unknown config key"):
        solve_conditional(torch.rand(1, 3, 4, 4), Blind(4), None, nfe=1, generator=None, config={"steps": 3})
