"""DPS's guidance step in EDM form (dps.norm_step): on the reference DDPM's own 1000 steps it is
Chung et al.'s Alg. 1 step exactly, and on any Karras schedule the DDPM steps it spans add up
to the same total, so the guidance does not fade with fewer NFE."""
from __future__ import annotations

import math

import pytest

from operators.solvers.base import karras_sigmas
from operators.solvers.dps import REFERENCE_DDPM, ddpm_time, norm_step


@pytest.mark.parametrize("x_scale", [2.0, 1.0])
def test_on_the_reference_schedule_each_step_is_the_papers(x_scale):
    """X_{t-1} = X' - zeta grad_{X_t} ||R|| with X_t = sqrt(abar_t) x_scale x_sigma, ||R|| = 2 ||r||:
    the step on grad_{x_sigma} ||r|| is zeta 2 / (x_scale^2 sqrt(abar_t abar_{t-1}))."""
    abar = REFERENCE_DDPM.alphas_cumprod
    sig = REFERENCE_DDPM.sigmas / x_scale  # the prior's units
    for t in (1000, 700, 300, 20, 2):
        got = norm_step(0.3, float(sig[t - 1]), float(sig[t - 2]), x_scale)
        want = 0.3 * 2 / x_scale**2 / math.sqrt(float(abar[t - 1]) * float(abar[t - 2]))
        assert got == pytest.approx(want, rel=1e-6)
    last = 0.3 * 2 / x_scale**2 / math.sqrt(float(abar[0]))  # t = 1 -> 0, abar_0 = 1
    assert norm_step(0.3, float(sig[0]), 0.0, x_scale) == pytest.approx(last)


@pytest.mark.parametrize("sigma_max", [40.0, 0.2])
def test_ddpm_steps_spanned_do_not_depend_on_nfe(sigma_max):
    total = {}
    for n in (50, 200, 1000):
        s = karras_sigmas(n, 0.001, sigma_max).tolist()
        total[n] = sum(ddpm_time(2 * a) - ddpm_time(2 * b) for a, b in zip(s[:-1], s[1:]))
    for n in (50, 200, 1000):  # sigma_max -> 0 spans t(2 sigma_max) steps, whatever the NFE
        assert total[n] == pytest.approx(ddpm_time(2 * sigma_max), rel=1e-9)
    assert ddpm_time(0.0) == 0 and ddpm_time(float(REFERENCE_DDPM.sigmas[-1])) == pytest.approx(1000)
    assert ddpm_time(float(REFERENCE_DDPM.sigmas[0])) == 1
