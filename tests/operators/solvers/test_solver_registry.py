"""Registry-wide tests over every solver: shapes on odd sizes, NFE, determinism, callback,
config round trip, clear errors; plus a real (tiny, random) EDM UNet prior and an SR operator."""
from __future__ import annotations

import json

import pytest
import torch
from solver_testkit import Square, gaussian_prior, gen, mask_op, measure

from operators.degradations import Noise, SuperResolution
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig
from operators.priors.embedded import EmbeddedPixelPrior
from operators.registry import UnknownNameError
from operators.solvers import CONFIGS, SOLVERS, get_solver, solver_config

NAMES = ["conditional", "ddnm", "diffpir", "dps", "indigo", "irsde", "langevin", "langevin_video", "latent_dps", "pnp_ula", "reld", "ud2m"]
NFE = {"pnp_ula": 12, "langevin": 4, "langevin_video": 4, "ud2m": 6}  # others: 5
CONFIG = {"ud2m": {"unfolding": "untrained"},  # no trained unfolding in the tests (tests/.../test_ud2m.py)
          # the plain Haar INN on the job's prior (its default conditional model: test_indigo.py)
          "indigo": {"weights": "untrained", "denoiser": "prior"},
          # fresh networks (irsde: eps = its closed-form linear guess)
          "irsde": {"weights": "untrained"}, "conditional": {"weights": "untrained"}}
BACKWARD = {"dps", "latent_dps"}
DETERMINISTIC = {"reld"}
OWN_NETWORK = {"conditional", "irsde"}  # blind solvers that run their own trained network, not the prior
LATENT_OK = {"conditional", "indigo", "irsde", "langevin", "langevin_video", "latent_dps", "reld"}


def solve(name, y, op, prior, seed=0, callback=None, **cfg):
    return get_solver(name)(y, op, prior, nfe=NFE.get(name, 5), generator=gen(seed),
                            config=solver_config(name, **{**CONFIG.get(name, {}), **cfg}), callback=callback)


def test_registry_lists_every_solver():
    assert SOLVERS.names() == NAMES and sorted(CONFIGS) == NAMES
    with pytest.raises(UnknownNameError, match="valid choices: conditional, ddnm, diffpir, dps"):
        get_solver("ddim")


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_and_unknown_keys(name):
    cfg = solver_config(name)
    assert solver_config(name, **json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=rf"'bogus'.*solver '{name}'"):
        solver_config(name, bogus=1)
    with pytest.raises(UnknownNameError):
        solver_config("nope")
    with pytest.raises(TypeError, match=name):
        get_solver(name)(torch.zeros(1, 1, 4, 4), None, gaussian_prior(), nfe=1, generator=gen(0), config=3)


def test_config_lists_become_tuples():
    cfg = solver_config("langevin", delta=[0.3, 0.3, 0.2], delta_misfit=True)
    assert cfg.delta == (0.3, 0.3, 0.2) and hash(cfg)
    with pytest.raises(ValueError, match="delta"):
        solver_config("langevin", delta=[])


@pytest.mark.parametrize("latent", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_shapes_nfe_determinism_callback_on_odd_sizes(name, latent):
    if latent and name not in LATENT_OK:
        pytest.skip("pixel-space solver")
    op = mask_op((37, 53), 0.05)
    _, y = measure(op, (2, 3, 37, 53))
    prior = gaussian_prior(latent=latent)
    steps = []
    out = solve(name, y, op, prior, seed=1, callback=steps.append)
    n = NFE.get(name, 5)
    assert out.x.shape == y.shape and out.x.dtype == torch.float32
    assert float(out.x.min()) >= 0 and float(out.x.max()) <= 1
    assert out.nfe == n and prior.nfe.forward == (0 if name in OWN_NETWORK else n)
    assert out.nfe_backward == (n if name in BACKWARD else 0)
    assert [s["step"] for s in steps] == list(range(n)) and "x" in steps[0]
    assert torch.equal(out.x, solve(name, y, op, prior, seed=1).x)
    other = solve(name, y, op, prior, seed=2).x
    assert torch.equal(out.x, other) == (name in DETERMINISTIC)
    assert (out.std is not None) == (name == "pnp_ula")


@pytest.mark.parametrize("name", NAMES)
def test_super_resolution_with_a_real_network_prior(name):
    """A tiny random EDM UNet (the embedded prior's architecture) and bicubic x2 SR."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = EDMUNet(EDMUNetConfig(channels=(8, 16), blocks=(1, 1), emb_dim=16,
                                    fourier_features=8, groups=4))
    prior = EmbeddedPixelPrior(net)
    op = SuperResolution(scale=2, mode="bicubic", noise=Noise(sigma=0.02))
    y = op.measure(torch.rand(1, 3, 24, 32, generator=gen(0)), gen(1))
    if name in ("ddnm",):
        try:
            op.pinv(y)
        except NotImplementedError:
            pytest.skip("this SR mode has no closed-form pinv")
    out = solve(name, y, op, prior, inexact_prox_steps=5) if name in ("diffpir", "reld") else solve(name, y, op, prior)
    assert out.x.shape == (1, 3, 24, 32) and torch.isfinite(out.x).all()
    assert out.nfe == NFE.get(name, 5)


# -- clear errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,needs", [("ddnm", "pinv"), ("diffpir", "prox"), ("reld", "prox"),
                                        ("pnp_ula", "adjoint")])
def test_linear_only_solvers_name_solver_and_degradation(name, needs):
    y = torch.rand(1, 1, 8, 8, generator=gen(0))
    with pytest.raises(ValueError, match=rf"solver '{name}'.*{needs}.*degradation 'square'"):
        solve(name, y, Square(noise=Noise(sigma=0.05)), gaussian_prior())


def test_langevin_needs_prox_unless_inexact_steps_allowed():
    op, y = Square(noise=Noise(sigma=0.05)), torch.rand(1, 1, 8, 8, generator=gen(0)) * 0.5
    with pytest.raises(ValueError, match="solver 'langevin'.*prox.*'square'"):
        solve("langevin", y, op, gaussian_prior(), inexact_prox_steps=0)
    out = solve("langevin", y, op, gaussian_prior())  # gradient steps through forward
    assert out.nfe == 4 and torch.isfinite(out.x).all()


class DetachedSquare(Square):
    """forward is not differentiable (like real JPEG); ``surrogate`` is."""

    def forward(self, x):
        return (x * x).detach()

    def surrogate(self, x):
        return x * x


def test_dps_differentiates_nonlinear_forward_or_its_surrogate():
    y = torch.rand(1, 1, 8, 8, generator=gen(0)) * 0.5
    for op in (Square(noise=Noise(sigma=0.05)), DetachedSquare(noise=Noise(sigma=0.05))):
        out = solve("dps", y, op, gaussian_prior())
        assert out.nfe_backward == 5 and torch.isfinite(out.x).all()


@pytest.mark.parametrize("name", ["ddnm", "diffpir", "dps", "pnp_ula"])
def test_pixel_solvers_refuse_latent_priors(name):
    op = mask_op((8, 8), 0.05)
    _, y = measure(op, (1, 1, 8, 8))
    with pytest.raises(ValueError, match=rf"solver '{name}'.*latent"):
        solve(name, y, op, gaussian_prior(latent=True))


def test_stochastic_solvers_need_a_generator():
    op = mask_op((8, 8), 0.05)
    _, y = measure(op, (1, 1, 8, 8))
    with pytest.raises(ValueError, match="torch.Generator"):
        get_solver("diffpir")(y, op, gaussian_prior(), nfe=2, generator=None)
    assert get_solver("reld")(y, op, gaussian_prior(), nfe=2, generator=None).nfe == 2
