"""langevin_video: equal to langevin when uncoupled; each coupling does exactly what it says."""
from __future__ import annotations

import pytest
import torch

from operators.solvers import get_solver, solver_config
from operators.solvers.temporal import aligned_neighbours, anchored_target, shared_noise, temporal_tv_prox
from tests.operators.solvers.solver_testkit import denoise_op, gaussian_prior, measure


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(y, op, prior=None, anchor=None, video_prior=None, nfe=4, seed=0, **cfg):
    return get_solver("langevin_video")(y, op, prior or gaussian_prior(), nfe=nfe, generator=gen(seed),
                                        config=solver_config("langevin_video", **cfg), anchor=anchor,
                                        video_prior=video_prior)


@pytest.mark.parametrize("latent", [False, True])
def test_uncoupled_window_is_langevin_draw_for_draw(latent):
    op = denoise_op(0.1)
    _, y = measure(op, (5, 3, 12, 10))
    keys = dict(delta=[0.8, 0.5], sigma_max=0.3)
    ref = get_solver("langevin")(y, op, gaussian_prior(latent), nfe=4, generator=gen(3),
                                 config=solver_config("langevin", **keys))
    out = run(y, op, gaussian_prior(latent), seed=3, noise_correlation=0.0, anchor_weight=0.0,
              temporal_weight=0.0, **keys)
    assert torch.equal(out.x, ref.x) and out.nfe == ref.nfe == 4


def test_shared_noise_has_the_asked_correlation():
    z = torch.zeros(2, 1, 200, 200)
    for r in (0.0, 0.5, 0.9, 1.0):
        eps = shared_noise(r, gen(1))(z)
        a, b = eps[0].flatten(), eps[1].flatten()
        assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1]) - r) < 0.02
        assert abs(float(eps.std()) - 1.0) < 0.02


def test_anchored_target_minimises_the_three_quadratics():
    """prox(target, weight) of the identity operator = argmin ||x-y||^2/(2 s2) + rho/2 ||x-u||^2
    + mu rho/2 ||x-p||^2 on anchored frames, without the anchor term on the others."""
    g = gen(2)
    y, u, p = (torch.rand(3, 1, 4, 4, generator=g) for _ in range(3))
    p[1] = float("nan")  # frame 1 has no anchor
    rho, mu, s2 = torch.tensor([2.0, 3.0, 5.0]), 0.7, 0.04
    target, weight = anchored_target(u, rho, p, mu)
    x = (y / s2 + weight.view(-1, 1, 1, 1) * target) / (1 / s2 + weight.view(-1, 1, 1, 1))
    r = rho.view(-1, 1, 1, 1)
    grad = (x - y) / s2 + r * (x - u) + mu * r * torch.nan_to_num(x - p)
    assert float(grad.abs().max()) < 1e-4
    assert torch.allclose(weight, torch.tensor([2.0 * 1.7, 3.0, 5.0 * 1.7]))


def test_temporal_tv_prox_is_exact_on_two_frames():
    """prox of lam |v2 - v1|: same mean, difference shrunk by 2 lam (soft threshold)."""
    x = torch.tensor([[0.2, 0.5, 0.9], [0.6, 0.52, 0.3]]).view(2, 3, 1, 1)
    lam = 0.05
    v = temporal_tv_prox(x, lam, iters=200)
    d = x[1] - x[0]
    d_new = d.sign() * (d.abs() - 2 * lam).clamp_min(0)
    m = (x[0] + x[1]) / 2
    assert torch.allclose(v[0], m - d_new / 2, atol=1e-5) and torch.allclose(v[1], m + d_new / 2, atol=1e-5)
    assert torch.equal(temporal_tv_prox(x, 0.0), x)


def test_anchor_pulls_the_overlap_frames_and_lowers_flicker():
    op = denoise_op(0.1)
    _, y = measure(op, (4, 3, 16, 16))
    anchor = torch.full_like(y, float("nan"))
    anchor[:2] = 0.5
    free = run(y, op, anchor=None, noise_correlation=0.0, temporal_weight=0.0)
    tied = run(y, op, anchor=anchor, noise_correlation=0.0, anchor_weight=50.0, temporal_weight=0.0)
    assert float((tied.x[:2] - 0.5).abs().mean()) < 0.3 * float((free.x[:2] - 0.5).abs().mean())
    assert torch.isfinite(tied.x).all()


def test_shared_noise_makes_outputs_of_a_static_window_agree():
    """Four copies of one noisy frame: correlated prior noise makes their restorations closer."""
    op = denoise_op(0.1)
    _, y1 = measure(op, (1, 3, 16, 16))
    y = y1.expand(4, -1, -1, -1).contiguous()
    spread = {r: float(run(y, op, noise_correlation=r, anchor_weight=0.0, temporal_weight=0.0,
                           sigma_max=0.5).x.std(dim=0).mean())
              for r in (0.0, 1.0)}
    assert spread[1.0] < 1e-6 < spread[0.0]


class TemporalMean:
    """A simple video expert for the tests: the mean of each frame with its neighbours."""

    sigma_min, sigma_max = 0.02, 0.2

    def __init__(self):
        self.calls = []

    def denoise_video(self, frames, sigma):
        self.calls.append(sigma)
        pad = torch.cat([frames[:1], frames, frames[-1:]])
        return (pad[:-2] + pad[1:-1] + pad[2:]) / 3


def test_video_expert_half_steps_are_counted_and_clipped_to_its_range():
    op = denoise_op(0.1)
    _, y = measure(op, (3, 3, 8, 8))
    expert = TemporalMean()
    out = run(y, op, video_prior=expert, nfe=3, sigma_max=1.0, sigma_min=0.01, expert_blend="none")
    assert out.nfe == 5 and out.extras["expert_nfe"] == 3  # K expert + K - 1 image steps
    assert expert.calls[0] == pytest.approx(0.2) and expert.calls[-1] == pytest.approx(0.02)


def test_config_checks_name_the_key():
    with pytest.raises(ValueError, match="overlap"):
        solver_config("langevin_video", window=4, overlap=4)
    with pytest.raises(ValueError, match="noise_correlation"):
        solver_config("langevin_video", noise_correlation=1.5)


def _pan(t: int = 4, shift: int = 2, seed: int = 0) -> torch.Tensor:
    """t frames (T, 3, 48, 64) of a smooth random scene moving ``shift`` px right per frame."""
    g = gen(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 24, generator=g), size=(48, 96), mode="bicubic")
    return torch.cat([base[..., 16 - shift * i: 80 - shift * i] for i in range(t)]).clamp(0, 1)


def test_aligned_neighbours_follow_the_motion():
    v = _pan()
    n = aligned_neighbours(v)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert float((n - v)[inner].abs().mean()) < 0.01  # warped neighbours land on the frame
    assert float((v[:-1] - v[1:])[inner].abs().mean()) > 0.03  # the frames themselves differ
    assert torch.equal(aligned_neighbours(v[:1]), v[:1])


def test_motion_term_lowers_the_error_on_a_noisy_pan():
    op = denoise_op(0.1)
    x = _pan(6)
    y = op.measure(x, gen(4))
    off = run(y, op, temporal_weight=0.0, nfe=3)
    on = run(y, op, temporal_weight=0.5, nfe=3)
    assert float((on.x - x).pow(2).mean()) < 0.9 * float((off.x - x).pow(2).mean())
