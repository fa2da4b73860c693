"""DPS, latent DPS and DDNM+ with the shipped embedded priors on small BSDS400 training crops:
each returns a better image than the input it was given (issue 8: DPS used to diverge to
~11 dB at 50 NFE; DDNM+ could not run on blur). About 30 s in all on one thread."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from solver_testkit import gen

from operators.degradations import JPEG, Blur, Noise, SuperResolution
from operators.metrics import psnr
from operators.priors import build_prior
from operators.priors.paths import shipped_weights
from operators.solvers import common, get_solver, row_config, solver_config
from tests.conftest import shared_data

CROPS = ("100007.jpg", "100039.jpg")  # BSDS400 training images (never the evaluation sets)


def crops(size: int) -> torch.Tensor:
    """(2, 3, size, size) centre crops in [0, 1]."""
    out = []
    for name in CROPS:
        a = np.asarray(Image.open(shared_data() / "train" / "BSDS400_color" / name).convert("RGB"))
        top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        out.append(torch.from_numpy(a[top:top + size, left:left + size].copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def prior(name: str):
    weights = "embedded_pixel" if name == "embedded" else "embedded_latent"
    if not shipped_weights(weights).is_file():
        pytest.skip(f"weights/{weights}.safetensors not found")
    return build_prior({"name": name})


def bicubic(y: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(y, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
def sr_case():
    """x4 bicubic SR at sigma_n = 0.05 on two 64 x 64 crops: (x, operator, y)."""
    x = crops(64)
    op = SuperResolution(scale=4, mode="bicubic", noise=Noise(sigma=0.05))
    return x, op, op.measure(x, gen(0))


def test_dps_at_50_nfe_beats_the_input(sr_case):
    """The shipped defaults, generating from the prior's sigma_max = 40 (measured 25.3 / 27.4 dB
    against pinv 22.9 / 23.0 and bicubic 25.0 / 25.4; the unscaled step gave ~11 dB)."""
    x, op, y = sr_case
    out = get_solver("dps")(y, op, prior("embedded"), nfe=50, generator=gen(1))
    got, pinv, bic = psnr(out.x, x), psnr(op.init_estimate(y), x), psnr(bicubic(y, 64), x)
    assert out.nfe == 50 and out.nfe_backward == 50
    assert (got > pinv + 1.5).all() and (got > bic - 0.5).all(), (got, pinv, bic)


def test_latent_dps_at_50_nfe_is_not_below_its_input(sr_case):
    """With its shipped sr preset (what a config with only {name, nfe} runs), chosen at the
    evaluate grid's noise 0.01: on 128 px crops it keeps the bicubic input (measured 30.62 /
    22.97 dB vs 30.39 / 22.93; the previous preset 30.57 / 22.81; the 2,000-step latent prior adds
    little yet, and on 64 px crops it falls 0.3-0.8 dB below); at noise 0.05 on 64 px, 24.91 /
    24.58 vs pinv 22.86 / 23.04 (bicubic 25.01 / 25.36; the previous preset 25.92 / 25.71)."""
    x, op, y = sr_case
    config, family = row_config("latent_dps", {}, op)
    out = get_solver("latent_dps")(y, op, prior("embedded_latent"), nfe=50, generator=gen(1), config=config)
    got, pinv = psnr(out.x, x), psnr(op.init_estimate(y), x)
    assert family == "sr" and out.nfe == 50
    assert (got > pinv + 1.5).all(), (got, pinv)
    x, quiet = crops(128), SuperResolution(scale=4, mode="bicubic", noise=Noise(sigma=0.01))
    y = quiet.measure(x, gen(0))
    out = get_solver("latent_dps")(y, quiet, prior("embedded_latent"), nfe=50, generator=gen(1), config=config)
    got, given = psnr(out.x, x), psnr(quiet.init_estimate(y), x)
    assert (got > given - 0.05).all(), (got, given)


def test_ddnm_plus_deblurs():
    """Gaussian blur sigma 2 (the evaluate task), sigma_n = 0.01, 20 NFE: measured 32.0 / 31.3 dB
    against the blurred 25.5 / 29.6 (one scalar lambda for all frequencies gave 4.8 / 4.6 dB)."""
    x = crops(64)
    op = Blur(sigma=2.0, noise=Noise(sigma=0.01))
    y = op.measure(x, gen(0))
    out = get_solver("ddnm")(y, op, prior("embedded"), nfe=20, generator=gen(1), config=solver_config("ddnm"))
    got, given = psnr(out.x, x), psnr(y, x)
    assert (got > given + 1.0).all(), (got, given)


@pytest.mark.parametrize("name", ["dps", "latent_dps"])
def test_dps_family_ends_inside_the_jpeg_constraint_set(name):
    """On noiseless JPEG the last step projects onto the quantization constraint set (a convex
    set holding the truth, so the result is never farther from it than the unprojected one). On
    128 px q10 crops at 50 NFE: DPS 29.15 / 24.81 dB, latent DPS 28.50 / 23.80 against the JPEG's
    28.93 / 24.76 (unprojected, latent DPS returned 23.69 / 20.56: its decode leaves the set)."""
    x = crops(64)
    op = JPEG(quality=10)
    y = op.measure(x, gen(0))
    kind = "embedded" if name == "dps" else "embedded_latent"
    config, _ = row_config(name, {}, op)
    seen = {}
    out = get_solver(name)(y, op, prior(kind), nfe=5, generator=gen(1), config=config,
                           callback=lambda s: seen.update(s))
    with torch.no_grad():
        raw = seen["x"] if name == "dps" else common.decode(prior(kind), seen["x"], tuple(x.shape[-2:]))
    torch.testing.assert_close(out.x, op.project(raw, y).clamp(0, 1), atol=1e-5, rtol=0)
    assert (psnr(out.x, x) >= psnr(raw.clamp(0, 1), x) - 1e-3).all(), (psnr(out.x, x), psnr(raw, x))


def test_latent_dps_jpeg_preset_is_above_the_jpeg():
    """The jpeg preset a {name, nfe} config gets (start at 0.1x the coding error's level, omega
    0.1): 50 NFE on 128 px q10 crops, measured 29.22 / 24.97 dB against the JPEG's 28.93 / 24.76
    (started at the full level, the previous preset, it was 0.07 dB below the JPEG on the grid)."""
    x = crops(128)
    op = JPEG(quality=10)
    y = op.measure(x, gen(0))
    config, family = row_config("latent_dps", {}, op)
    out = get_solver("latent_dps")(y, op, prior("embedded_latent"), nfe=50, generator=gen(1), config=config)
    got, given = psnr(out.x, x), psnr(op.init_estimate(y), x)
    assert family == "jpeg" and (got > given + 0.1).all(), (got, given)


def test_reld_jpeg_preset_relaxed_steps_stay_above_the_jpeg():
    """20 NFE on 128 px q10 crops with the latent prior: full HQS steps (relax 1) drift inside the
    wide q10 boxes (the second crop ends below the JPEG); the jpeg preset's relaxed steps (RED's
    gradient step, relax 0.1) end above it on both. Measured: relax 1 29.47 / 24.46 dB, the preset
    29.68 / 25.21, the JPEG 28.93 / 24.76."""
    x = crops(128)
    op = JPEG(quality=10)
    y = op.measure(x, gen(0))
    config, family = row_config("reld", {}, op)
    full, _ = row_config("reld", {"relax": 1.0}, op)
    solve = get_solver("reld")
    got = psnr(solve(y, op, prior("embedded_latent"), nfe=20, generator=gen(1), config=config).x, x)
    worse = psnr(solve(y, op, prior("embedded_latent"), nfe=20, generator=gen(1), config=full).x, x)
    given = psnr(op.init_estimate(y), x)
    assert family == "jpeg" and config.relax < 1
    assert (got > given + 0.1).all() and (got > worse + 0.1).all(), (got, worse, given)


def test_ud2m_jpeg_preset_from_the_coding_error_is_above_the_jpeg():
    """The shipped unfolding (trained on blur, SR and noise; its own schedule starts at 0.4 and
    fell below the JPEG on Set14) with the jpeg preset, from the coding error's level, on 128 px
    q10 crops at 6 NFE: above the JPEG on each, by > 0.2 dB on average. Measured (5,957-step
    unfolding): 28.97 / 25.25 dB, the JPEG 28.93 / 24.76 (3,678 steps: 29.13 / 25.29; 1,782:
    29.29 / 25.33; its own schedule 29.97 / 25.22 on these two, but 25.89 vs the preset's 26.90
    on 12 other training crops; on all 68 CBSD68 crops of the evaluate grid 26.16 vs 25.31)."""
    x = crops(128)
    op = JPEG(quality=10)
    y = op.measure(x, gen(0))
    config, family = row_config("ud2m", {}, op)
    got = psnr(get_solver("ud2m")(y, op, prior("embedded"), nfe=6, generator=gen(1), config=config).x, x)
    given = psnr(op.init_estimate(y), x)
    assert family == "jpeg" and config.sigma_max < 0.1 and config.sigma_min < config.sigma_max
    assert (got > given).all() and float((got - given).mean()) > 0.2, (got, given)


def test_ud2m_refine_expert_improves_on_imdns_estimate():
    """x4 SR started from the published IMDN network's estimate (a solver's ``init``): the row's
    family is ``refine``, the shipped file's refine expert runs, and it returns a better image
    than IMDN's on each crop (128 px, noise 0.01, 6 NFE). The shared unfolding from the same
    start was 0.02 dB under IMDN on 6 CBSD68 crops, the expert +0.11 (benchmarks/RESULTS.md)."""
    from operators.degradations.estimated import with_estimate
    from operators.estimators import build_estimator

    x = crops(128)
    op = SuperResolution(scale=4, noise=Noise(sigma=0.01))
    y = op.measure(x, gen(0))
    est = build_estimator({"name": "imdn"})
    start = with_estimate(op, est)
    config, family = row_config("ud2m", {}, start)
    got = psnr(get_solver("ud2m")(y, start, prior("embedded"), nfe=6, generator=gen(1), config=config).x, x)
    given = psnr(est(y), x)
    assert family == "refine" and (got > given).all(), (got, given)
