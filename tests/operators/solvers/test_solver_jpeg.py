"""JPEG through the exact data step (the QCS projection): the prox-based solvers take a
noiseless JPEG without inexact_prox_steps and end in its constraint set; with the shipped pixel
prior RELD returns a better image than the JPEG it was given and DiffPIR one close to it
(issue 8: no solver returns worse than its input; through the surrogate they were 4-13 dB worse)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from solver_testkit import gaussian_prior, gen

from operators.degradations import JPEG, Noise
from operators.metrics import psnr
from operators.priors import build_prior
from operators.priors.paths import shipped_weights
from operators.solvers import get_solver, solver_config
from tests.conftest import shared_data


def cbsd68_q10() -> tuple[torch.Tensor, JPEG, torch.Tensor]:
    """(x, op, y): two 96 x 96 CBSD68 crops (never tuned on), the q10 JPEG and its decoded y."""
    crops = []
    for name, (top, left) in (("102061.png", (120, 200)), ("105025.png", (150, 120))):
        a = np.asarray(Image.open(shared_data() / "eval" / "CBSD68" / name).convert("RGB"))
        crops.append(torch.from_numpy(a[top:top + 96, left:left + 96].copy()).permute(2, 0, 1).float() / 255)
    x = torch.stack(crops)
    op = JPEG(quality=10)
    return x, op, op.forward(x)


@pytest.mark.parametrize("name", ["diffpir", "langevin", "reld"])
def test_noiseless_jpeg_needs_no_inexact_steps_and_ends_in_the_set(name):
    op = JPEG(quality=20)
    x = torch.rand(1, 3, 24, 32, generator=gen(0))
    y = op.forward(x)
    out = get_solver(name)(y, op, gaussian_prior(), nfe=4, generator=gen(1),
                           config=solver_config(name, inexact_prox_steps=0))
    assert out.x.shape == y.shape and torch.isfinite(out.x).all()
    # the last step of each is the projection (then the [0, 1] clamp)
    assert torch.allclose(op.project(out.x, y), out.x, atol=2 / 255)


def test_noisy_jpeg_still_asks_for_inexact_steps():
    op = JPEG(quality=20, noise=Noise(sigma=0.01))
    y = op.forward(torch.rand(1, 3, 16, 16, generator=gen(0)))
    with pytest.raises(ValueError, match="solver 'diffpir'.*prox.*'jpeg'"):
        get_solver("diffpir")(y, op, gaussian_prior(), nfe=2, generator=gen(1))


def test_embedded_prior_at_q10_reld_beats_the_jpeg_and_diffpir_stays_close():
    """Two 96 x 96 CBSD68 crops at q10, 6 NFE. RELD starts from y and projects: better than the
    JPEG. DiffPIR adds sigma_max noise to y first and loses more than the prior restores, but
    through the exact step it ends in the constraint set within 0.8 dB of the JPEG (it was
    4-13 dB worse through the surrogate's gradient steps)."""
    if not shipped_weights("embedded_pixel").is_file():
        pytest.skip("weights/embedded_pixel.safetensors not found")
    x, op, y = cbsd68_q10()
    prior = build_prior({"name": "embedded"})
    gains = {}
    for name in ("reld", "diffpir"):
        out = get_solver(name)(y, op, prior, nfe=6, generator=gen(0),
                               config=solver_config(name, sigma_max={"reld": 0.05, "diffpir": 0.1}[name]))
        assert out.nfe == 6 and torch.allclose(op.project(out.x, y), out.x, atol=2 / 255)
        gains[name] = psnr(out.x, x) - psnr(y, x)
    # measured: reld +0.56 / +0.37 dB, diffpir -0.50 / -0.41 dB
    assert (gains["reld"] > 0.2).all() and (gains["diffpir"] > -0.8).all(), gains


def test_ddnm_on_jpeg_ends_in_the_constraint_set():
    """DDNM's range-space step for noiseless JPEG is the QCS projection: its output satisfies
    the constraint (re-projecting it changes nothing beyond rounding) and it runs with defaults."""
    import torch

    from operators.degradations import build_degradation
    from operators.priors.base import GaussianPrior
    from operators.seeding import make_generator
    from operators.solvers import get_solver

    x = torch.rand(1, 3, 32, 32, generator=make_generator(0, "x")) * 0.5 + 0.25
    op = build_degradation({"name": "jpeg", "quality": 30})
    y = op.forward(x)
    out = get_solver("ddnm")(y, op, GaussianPrior(s2=0.02, mean=0.5), nfe=4, generator=make_generator(0, "s"),
                             config={"sigma_max": 0.1, "eta": 1.0})
    torch.testing.assert_close(op.project(out.x, y), out.x, atol=2e-3, rtol=0)


@pytest.mark.parametrize("prior_spec", [{"name": "embedded"}, {"name": "ffdnet"}])
def test_diffpir_with_its_jpeg_preset_beats_the_jpeg(prior_spec):
    """DiffPIR run as a user runs it ({name, nfe} only: the shipped jpeg preset) starts from y at
    JPEG.init_sigma, the coding error's Gaussian-equivalent level, and takes a few denoise-and-
    project steps: better than the JPEG it was given on two CBSD68 crops at q10 (never tuned on),
    with the embedded prior and with the published FFDNet."""
    from operators.solvers.presets import resolve_spec

    if prior_spec["name"] == "embedded" and not shipped_weights("embedded_pixel").is_file():
        pytest.skip("weights/embedded_pixel.safetensors not found")
    if prior_spec["name"] == "ffdnet" and not (shared_data() / "weights" / "FFDNet_color.mat").is_file():
        pytest.skip("../shared/data/weights/FFDNet_color.mat not found")
    x, op, y = cbsd68_q10()
    keys, preset = resolve_spec("diffpir", {}, op)
    assert preset == "jpeg" and keys["sigma_max"] == pytest.approx(op.init_sigma)
    out = get_solver("diffpir")(y, op, build_prior(prior_spec), nfe=10, generator=gen(0),
                                config=solver_config("diffpir", **keys))
    assert torch.allclose(op.project(out.x, y), out.x, atol=2 / 255)
    gain = psnr(out.x, x) - psnr(y, x)
    # measured: embedded +0.59 / +0.38 dB (3,700-step prior), FFDNet +0.90 / +0.54 dB
    assert (gain > 0.25).all(), gain


def test_reld_relax_takes_that_fraction_of_the_prior_step():
    """One NFE with relax r: x = P_C(y + r (D(y, sigma_max) - y)) exactly (RED's gradient step
    on the prior, then the QCS projection); r outside (0, 1] is refused naming the key."""
    op = JPEG(quality=20)
    y = op.forward(torch.rand(1, 3, 24, 32, generator=gen(0)))
    prior = gaussian_prior()
    x0 = op.init_estimate(y)
    for r in (1.0, 0.3):
        out = get_solver("reld")(y, op, prior, nfe=1, generator=gen(1),
                                 config=solver_config("reld", sigma_max=0.1, relax=r))
        u = prior.denoise(x0, 0.1, None)
        torch.testing.assert_close(out.x, op.project(x0 + r * (u - x0), y).clamp(0, 1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="relax"):
        solver_config("reld", relax=0.0)
