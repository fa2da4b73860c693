"""Every solver against the closed-form Gaussian posterior.

Prior x0 ~ N(0.5, s2 I) (GaussianPrior: D(x, sigma) = m + (x - m) / (1 + sigma^2 / s2)),
operators A = I or a pixel mask with Gaussian noise: the posterior is elementwise Gaussian
with mean (A^T y / sigma_n^2 + m / s2) / (A^T A / sigma_n^2 + 1 / s2) and variance
1 / (A^T A / sigma_n^2 + 1 / s2). Pixels are independent, so one run over 16 x 32 x 32 pixels
estimates E[x_out | y] by a least-squares fit x_out - m = c (y - m) + b; the posterior has
c* = s2 / (s2 + sigma_n^2), b* = 0. Monte-Carlo error of c is resid_std / (std(y) sqrt(N))
~ 0.08 / (0.17 * 128) ~ 0.004, so tolerances below 0.01 are MC-bound; larger ones are the
method's own, documented, discretisation bias (measured values in the comments).
"""
from __future__ import annotations

import math

import pytest
import torch
from solver_testkit import (
    MEAN,
    S2,
    denoise_op,
    fit_affine,
    gaussian_prior,
    gen,
    mask_op,
    measure,
    posterior,
    transfer,
)

from operators.degradations import Blur, Noise
from operators.solvers import get_solver, solver_config
from operators.solvers.base import karras_sigmas

SHAPE = (16, 1, 32, 32)
SIGMA_N = 0.1
C_STAR = S2 / (S2 + SIGMA_N**2)  # 2/3


def run(name, op, y, nfe, seed=1, prior=None, **cfg):
    return get_solver(name)(y, op, prior or gaussian_prior(), nfe=nfe, generator=gen(seed),
                            config=solver_config(name, **cfg))


@pytest.fixture(scope="module")
def noisy_identity():
    op = denoise_op(SIGMA_N)
    x, y = measure(op, SHAPE)
    return op, y


# -- RELD: deterministic HQS, converges to the MAP (= posterior mean for a Gaussian) ---------
def make_op(kind: str):
    if kind == "denoise":
        return denoise_op(SIGMA_N)
    if kind == "mask":
        return mask_op((32, 32), SIGMA_N)
    return Blur(kind="gaussian", sigma=1.0, noise=Noise(sigma=0.05))


@pytest.mark.parametrize("kind", ["denoise", "mask", "blur"])
def test_reld_converges_to_posterior_mean(kind):
    op = make_op(kind)
    _, y = measure(op, SHAPE)
    mean, _ = posterior(op, y)
    scale = (mean - MEAN).pow(2).mean().sqrt()  # the size of the answer
    err = {}
    for k in (30, 60):
        out = run("reld", op, y, k, sigma_min=0.002)
        err[k] = float((out.x - mean).pow(2).mean().sqrt() / scale)
        assert out.nfe == k and out.nfe_backward == 0
    # HQS with continuation reaches the MAP as K -> inf; the lag from the initialisation decays
    # like 1 / K (measured relative rms 3.2% / 3.3% / 9.8% for denoise / mask / blur at K = 30,
    # half that at 60, a quarter at 120)
    assert err[30] < 0.12 and err[60] < 0.6 * err[30]


def test_reld_latent_equals_pixel():
    """Through an orthogonal linear codec the latent Gaussian prior is the same prior."""
    op = mask_op((37, 53), SIGMA_N)  # odd size: the latent path pads and crops
    _, y = measure(op, (2, 3, 37, 53))
    pix = run("reld", op, y, 10, prior=gaussian_prior())
    lat = run("reld", op, y, 10, prior=gaussian_prior(latent=True))
    assert lat.x.shape == y.shape
    # interior pixels agree exactly; the reflect-padded last row/column sees a copy of its
    # neighbour, which only changes those padded pixels (cropped away) since D is pointwise
    assert torch.allclose(pix.x, lat.x, atol=1e-5)


# -- PnP-ULA: sample mean and variance of the Langevin chain -----------------------------------
def ula_target(prec_lik, mean_lik_term, s2, eps, delta):
    """The exact stationary law of PnP-ULA on this problem: the prior is smoothed to
    N(m, s2 + eps) (D_eps is the MMSE denoiser of x0 + sqrt(eps) n), and ULA with step delta on
    a Gaussian of variance v has stationary variance v / (1 - delta / (2 v))."""
    prec = prec_lik + 1 / (s2 + eps)
    v = 1 / prec
    return (mean_lik_term + MEAN / (s2 + eps)) * v, v / (1 - delta / (2 * v))


@pytest.mark.parametrize("kind", ["denoise", "mask"])
def test_pnp_ula_mean_and_std(kind):
    op = denoise_op(SIGMA_N) if kind == "denoise" else mask_op((32, 32), SIGMA_N)
    _, y = measure(op, (8, 1, 32, 32))
    sigma_den, delta, n = 0.05, 1e-3, 2500
    out = run("pnp_ula", op, y, n, sigma_den=sigma_den, step=delta, proj=0.0, burn_in=0.2)
    assert out.nfe == n and out.std is not None and out.std.shape == y.shape
    ata = op.adjoint(op.forward(torch.ones_like(y)))
    t_mean, t_var = ula_target(ata / SIGMA_N**2, op.adjoint(y) / SIGMA_N**2, S2, sigma_den**2, delta)
    p_mean, p_var = posterior(op, y)
    # documented bias of the method at these settings: smoothing + discretisation change the
    # posterior variance by 12% (observed pixels) and 15% (missing ones: (s2 + eps) / s2 and
    # the step's inflation) and the mean by < 0.02 here (eps = 0.0025 against s2 = 0.02)
    assert (t_var / p_var - 1).abs().max() < 0.16 and (t_mean - p_mean).abs().max() < 0.02
    # MC error of the chain mean: AR(1) with rho = 1 - delta / v has
    # Var(mean) = v / N_kept * (1 + rho) / (1 - rho) per pixel
    rho = 1 - delta / (1 / (ata / SIGMA_N**2 + 1 / (S2 + sigma_den**2)))
    mc_sd = (t_var / out.extras["samples"] * (1 + rho) / (1 - rho)).sqrt()
    z = (out.x - t_mean) / mc_sd
    assert abs(float(z.mean())) < 0.15  # 8192 pixels: the mean of z is ~N(0, 1/8192 * corr)
    assert 0.7 < float(z.pow(2).mean().sqrt()) < 1.3  # z is ~N(0, 1) per pixel
    # variance: the pixel average of the estimated variance; relative MC error ~0.1 per pixel,
    # ~0.002 over 8192 pixels, plus the O(1/N_eff) < 2% downward bias of the sample variance
    for sel in ([ata > 0.5, ata < 0.5] if kind == "mask" else [ata > 0.5]):
        ratio = float((out.std[sel] ** 2).mean() / t_var[sel].mean())
        assert 0.95 < ratio < 1.02, ratio


def test_pnp_ula_blur_mean_and_std():
    """Circular blur: the Gaussian posterior is diagonal in the (orthonormal) Fourier basis, so
    each coefficient is an independent AR(1) chain with v_f = 1 / (|K_f|^2 / sigma_n^2 +
    1 / (s2 + eps)) and rho_f = 1 - delta / v_f: the per-pixel variance is the average over f of
    v_f / (1 - delta / (2 v_f)), and the mean-square MC error of the chain mean the average of
    v_f / N (1 + rho_f) / (1 - rho_f) (Parseval)."""
    op = make_op("blur")
    _, y = measure(op, (8, 1, 32, 32))
    sigma_den, delta, n = 0.05, 1e-3, 2500
    eps = sigma_den**2
    out = run("pnp_ula", op, y, n, sigma_den=sigma_den, step=delta, proj=0.0, burn_in=0.2)
    v = 1 / (transfer(op, (32, 32)) / op.sigma_n**2 + 1 / (S2 + eps))
    rho, var_f = 1 - delta / v, v / (1 - delta / (2 * v))
    t_mean = op.prox(torch.full_like(y, MEAN), y, 1 / (S2 + eps))  # posterior mean, smoothed prior
    mc_ms = float((var_f / out.extras["samples"] * (1 + rho) / (1 - rho)).mean())
    assert 0.7 < float((out.x - t_mean).pow(2).mean() / mc_ms) ** 0.5 < 1.3
    # sample variance: O(1/N_eff) < 3% low on the slowest (|K_f| ~ 0) frequencies
    assert 0.93 < float((out.std**2).mean() / var_f.mean()) < 1.03
    # the method's bias here (eps = 0.0025 against s2 = 0.02) against the exact posterior
    p_mean, _ = posterior(op, y)
    assert float((t_mean - p_mean).abs().max()) < 0.03


# -- DiffPIR ----------------------------------------------------------------------------------
def test_diffpir_mean(noisy_identity):
    op, y = noisy_identity
    # fully stochastic renoising (zeta = 1): the only approximation left is the prox weight
    # 1 / sigma^2 in place of the exact 1 / sigma^2 + 1 / s2, which matters for sigma >~ s
    # (measured c = 0.680 at 100 NFE, 0.674 at 400: consistent, O(1/N) bias)
    c, b, _ = fit_affine(y, run("diffpir", op, y, 100, zeta=1.0).x)
    assert abs(c - C_STAR) < 0.025 and abs(b) < 0.005
    # the official zeta = 0.1 keeps most of the deterministic direction and over-trusts y
    # early on (measured c = 0.79 at 50 NFE): between the posterior mean and y
    c, b, _ = fit_affine(y, run("diffpir", op, y, 50).x)
    assert C_STAR < c < C_STAR + 0.15 and abs(b) < 0.005


# -- DDNM -------------------------------------------------------------------------------------
def test_ddnm_noiseless_mask_samples_prior_in_null_space():
    op = mask_op((32, 32), 0.0)
    _, y = measure(op, SHAPE)
    out = run("ddnm", op, y, 100, eta=None).x
    obs = torch.as_tensor(op.mask).expand_as(y)
    inside = obs & (y > 0) & (y < 1)  # the final clamp aside, x = A^+ y + (I - A^+ A) x0
    assert torch.equal(out[inside], y[inside])
    # missing pixels: posterior = prior N(m, s2). MC error of their mean ~0.14 / sqrt(8192);
    # the ancestral sampler with the posterior mean plugged in loses Var[x0 | x_i] each step,
    # an O(1/N) variance deficit (measured 0.63 s2 at 20 NFE, 0.84 at 50, 0.88 at 100)
    assert abs(float(out[~obs].mean()) - MEAN) < 0.006
    assert 0.8 < float(out[~obs].var()) / S2 < 1.05


def test_ddnm_plus_noisy_mask():
    """DDNM+ lets y's noise stand in for the diffusion noise while it fits the budget: observed
    pixels stay near y (measured c = 0.96 vs c* = 0.89 at sigma_n = 0.05), missing ones near m."""
    op = mask_op((32, 32), 0.05)
    _, y = measure(op, SHAPE)
    obs = torch.as_tensor(op.mask).expand_as(y)
    out = run("ddnm", op, y, 50).x
    c, b, _ = fit_affine(y, out, obs)
    c_star = S2 / (S2 + 0.05**2)
    assert c_star - 0.01 < c < 1.0 and abs(b) < 0.005
    assert abs(float(out[~obs].mean()) - MEAN) < 0.006


# -- DPS and latent DPS -----------------------------------------------------------------------
@pytest.mark.parametrize("latent", [False, True])
def test_dps_likelihood_guidance_mean(noisy_identity, latent):
    op, y = noisy_identity
    name, key = ("latent_dps", "omega") if latent else ("dps", "zeta")
    out = run(name, op, y, 50, prior=gaussian_prior(latent=latent), guidance="likelihood", **{key: 1.0})
    assert out.nfe == 50 and out.nfe_backward == 50
    # DPS's p(y | x_t) ~ N(y; A E[x0 | x_t], sigma_n^2) drops Var[x0 | x_t] = s2 sigma^2 / (s2 +
    # sigma^2), over-trusting y at high noise: measured c = 0.88 at 50 and 0.87 at 200 NFE
    # for c* = 0.67 -- between the posterior mean and y, never past either
    c, b, _ = fit_affine(y, out.x)
    assert C_STAR < c < C_STAR + 0.25 and abs(b) < 0.005


def test_psld_gluing_runs_and_changes_the_result():
    op = mask_op((16, 16), 0.05)
    _, y = measure(op, (2, 1, 16, 16))
    prior = gaussian_prior(latent=True)
    plain = run("latent_dps", op, y, 10, prior=prior)
    glued = run("latent_dps", op, y, 10, prior=prior, gamma=0.1)
    assert glued.nfe == 10 and glued.nfe_backward == 10
    assert not torch.allclose(plain.x, glued.x)


# -- LATINO-style Langevin --------------------------------------------------------------------
def langevin_recursion(sigmas, delta, s2=S2, sn2=SIGMA_N**2):
    """E[x_K | y] = m + c (y - m) and Var[x_K | y] of the K-step scheme, in closed form: per
    step u - m = a (x - m + sigma eps), a = s2 / (s2 + sigma^2); x = (y / sn2 + rho u) / (1 / sn2
    + rho), rho = 1 / (delta sigma^2); from x_0 = y."""
    c, v = 1.0, 0.0
    for s in sigmas:
        a, w = s2 / (s2 + s * s), delta * s * s / (sn2 + delta * s * s)
        f = a * (1 - w)
        c, v = w + f * c, f * f * (v + s * s)
    return c, math.sqrt(v)


@pytest.mark.parametrize("latent", [False, True])
@pytest.mark.parametrize("k,sigma_max", [(8, 1.0), (4, 10.0)])
def test_langevin_matches_its_closed_form_and_nears_the_posterior(noisy_identity, latent, k, sigma_max):
    op, y = noisy_identity
    out = run("langevin", op, y, k, prior=gaussian_prior(latent=latent), sigma_max=sigma_max)
    assert out.nfe == k and out.nfe_backward == 0
    sigmas = karras_sigmas(k, 1e-3, sigma_max)[:-1].tolist()  # GaussianPrior.sigma_min = 1e-3
    c_ref, sd_ref = langevin_recursion(sigmas, 1.0)
    c, b, sd = fit_affine(y, out.x)
    # the implementation: slope within 3 MC standard errors (~0.002), spread within 3%
    assert abs(c - c_ref) < 0.008 and abs(b) < 0.003 and abs(sd / sd_ref - 1) < 0.03
    # the method: its fixed point is the posterior mean as sigma -> 0, but K = 4-8 steps from
    # the y-initialisation stop short of it (c_ref = 0.77 for K = 8 from 1.0; 0.84 for K = 4)
    assert C_STAR < c_ref < C_STAR + 0.2


def test_langevin_without_renoise_is_the_deterministic_recursion(noisy_identity):
    """renoise=False: every prior call on x as it is, so x_K = m + c (y - m) exactly, c the
    closed-form recursion's slope (no spread), whatever the generator."""
    op, y = noisy_identity
    out = run("langevin", op, y, 8, sigma_max=1.0, renoise=False)
    c_ref, _ = langevin_recursion(karras_sigmas(8, 1e-3, 1.0)[:-1].tolist(), 1.0)
    torch.testing.assert_close(out.x, (MEAN + c_ref * (y - MEAN)).clamp(0, 1), atol=2e-5, rtol=0)
    assert torch.equal(out.x, run("langevin", op, y, 8, seed=7, sigma_max=1.0, renoise=False).x)


def test_langevin_delta_schedule_and_misfit_are_recorded(noisy_identity):
    op, y = noisy_identity
    steps = []
    out = get_solver("langevin")(y[:2], op, gaussian_prior(), nfe=4, generator=gen(0), callback=steps.append,
                                 config=solver_config("langevin", delta=[0.3, 0.2], delta_misfit=True))
    assert len(out.extras["deltas"]) == 4
    for k, st in enumerate(steps):  # delta_k = schedule value (last repeats) x ||A u - y|| per image
        misfit = (op.forward(st["denoised"]) - y[:2]).flatten(1).norm(dim=1)
        expect = (0.3 if k == 0 else 0.2) * misfit
        assert torch.allclose(torch.tensor(out.extras["deltas"][k]), expect, rtol=1e-5)
