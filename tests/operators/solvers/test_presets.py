"""Per-task presets: family mapping, merging, symbolic start level, and that a schedule started
at the measurement's noise level starts from y itself (exact answers with the Gaussian prior)."""
from __future__ import annotations

import pytest
import torch

from operators.degradations import build_degradation
from operators.priors.base import GaussianPrior
from operators.seeding import make_generator
from operators.solvers import CONFIGS, get_solver, solver_config
from operators.solvers.common import initial_state
from operators.solvers.presets import FAMILIES, presets, resolve_spec, task_family

SPECS = {
    "denoise": {"name": "denoise", "noise_sigma": 0.1},
    "deblur": {"name": "blur", "kind": "gaussian", "sigma": 2.0},
    "deblur_motion": {"name": "blur", "kind": "motion"},
    "sr": {"name": "sr", "scale": 4},
    "inpaint_random": {"name": "inpaint", "kind": "random", "fraction": 0.5},
    "inpaint_holes": {"name": "inpaint", "kind": "box", "fraction": 0.25},
    "colorize": {"name": "colorize"},
    "jpeg": {"name": "jpeg", "quality": 10},
    "default": {"name": "realesrgan", "scale": 4},
    "refine": {"name": "sr", "scale": 4},  # from a learned estimate (tests/operators/estimators)
}


@pytest.mark.parametrize("family", sorted(set(SPECS) - {"refine"}))
def test_task_family(family):
    assert task_family(build_degradation(SPECS[family])) == family


def test_a_family_without_a_preset_takes_its_parents():
    from operators.solvers.presets import preset_values

    table = presets()
    missing = [s for s, fams in table.items() if "deblur" in fams and "deblur_motion" not in fams]
    assert missing, "every solver has a deblur_motion preset: nothing falls back"
    for solver in missing:
        assert preset_values(solver, "deblur_motion") == preset_values(solver, "deblur")


def test_every_shipped_preset_builds_its_solver_config():
    table = presets()
    assert table, "configs/presets.yaml is empty"
    for solver, fams in table.items():
        assert solver in CONFIGS, f"presets.yaml names unknown solver {solver!r}"
        assert set(fams) <= set(FAMILIES)
        for fam in fams:
            keys, used = resolve_spec(solver, {"preset": fam}, build_degradation(SPECS[fam]))
            solver_config(solver, **keys)  # raises on a bad key or value
            assert used == fam


def test_spec_keys_win_and_measurement_start_is_resolved(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("diffpir:\n  denoise: {sigma_max: measurement, start_scale: 1.5, lam: 7.0, zeta: 0.0}\n"
                    "  default: {lam: 2.0}\n")
    op = build_degradation({"name": "denoise", "noise_sigma": 0.1})
    keys, used = resolve_spec("diffpir", {"zeta": 0.5}, op, path)
    assert used == "denoise" and keys == {"sigma_max": pytest.approx(0.15), "lam": 7.0, "zeta": 0.5}
    keys, used = resolve_spec("diffpir", {}, build_degradation(SPECS["sr"]), path)
    assert (keys, used) == ({"lam": 2.0}, "sr")  # no sr preset: the solver's default preset
    assert resolve_spec("diffpir", {"preset": "none", "lam": 3.0}, op, path) == ({"lam": 3.0}, "none")
    keys, _ = resolve_spec("diffpir", {"preset": "denoise", "start_scale": 1.0}, op, path)
    assert keys["sigma_max"] == pytest.approx(0.1)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="valid: auto, none, denoise"):
        resolve_spec("diffpir", {"preset": "sharpen"}, None)


def test_start_at_measurement_starts_from_y_without_new_noise():
    op = build_degradation({"name": "denoise", "noise_sigma": 0.1})
    y = torch.rand(1, 3, 8, 8)
    x = initial_state(y.clamp(0, 1), op, GaussianPrior(), 0.1, make_generator(0, "x"))
    assert torch.equal(x, y.clamp(0, 1))
    x = initial_state(y, op, GaussianPrior(), 0.2, make_generator(0, "x"))
    assert float((x - y).std()) == pytest.approx((0.2**2 - 0.1**2) ** 0.5, rel=0.3)


def test_one_step_from_the_measurement_is_the_posterior_mean():
    """Denoising, Gaussian prior N(m, s2): one DiffPIR step started at sigma_y with a negligible
    prox weight returns D(y, sigma_y) = m + (y - m) / (1 + sigma_y^2 / s2), the exact posterior mean."""
    s2, m, sy = 0.05, 0.5, 0.1
    prior = GaussianPrior(s2=s2, mean=m)
    op = build_degradation({"name": "denoise", "noise_sigma": sy})
    y = (m + 0.2 * torch.randn(2, 3, 16, 16, generator=make_generator(0, "y"))).clamp(0, 1)
    keys, _ = resolve_spec("diffpir", {"preset": "none", "sigma_max": "measurement", "zeta": 0.0, "lam": 1e9}, op)
    out = get_solver("diffpir")(y, op, prior, nfe=1, generator=make_generator(0, "s"),
                                config=solver_config("diffpir", **keys))
    expected = (m + (y - m) / (1 + sy**2 / s2)).clamp(0, 1)
    torch.testing.assert_close(out.x, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_jpeg_start_level_is_its_coding_error(quality):
    """JPEG's initial estimate is y; its coding-error estimate must be near the RMS error of a real
    photo (skimage's astronaut, not a calibration image), and init_sigma (the start level of
    ``measurement``) its Gaussian-equivalent level, GAUSSIAN_EQUIVALENT x that estimate."""
    from skimage.data import astronaut

    from operators.degradations.jpeg import GAUSSIAN_EQUIVALENT

    x = torch.from_numpy(astronaut()[:256, 128:384].astype("float32") / 255).permute(2, 0, 1)[None]
    op = build_degradation({"name": "jpeg", "quality": quality})
    rmse = float((op.forward(x) - x).pow(2).mean().sqrt())
    assert op.coding_rmse == pytest.approx(rmse, rel=0.4)
    assert op.init_sigma == pytest.approx(GAUSSIAN_EQUIVALENT * op.coding_rmse)
    keys, used = resolve_spec("diffpir", {"preset": "none", "sigma_max": "measurement"}, op)
    assert keys["sigma_max"] == pytest.approx(op.init_sigma)


def test_measurement_end_level_is_resolved(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("diffpir:\n  denoise: {sigma_max: measurement, sigma_min: measurement, end_scale: 0.8}\n")
    op = build_degradation({"name": "denoise", "noise_sigma": 0.1})
    keys, _ = resolve_spec("diffpir", {}, op, path)
    assert keys == {"sigma_max": pytest.approx(0.1), "sigma_min": pytest.approx(0.08)}


def test_denoising_starts_from_y_unclipped():
    """y's noise is what the denoiser is told about: clipping it to [0, 1] would bias it on dark
    and bright pixels (the first step must see y exactly as measured)."""
    op = build_degradation({"name": "denoise", "noise_sigma": 0.2})
    y = op.measure(torch.full((1, 3, 8, 8), 0.05), make_generator(0, "y"))
    assert float(y.min()) < 0
    assert torch.equal(op.init_estimate(y), y)
    assert torch.equal(initial_state(y, op, GaussianPrior(), 0.2, make_generator(0, "x")), y)
    blur = build_degradation({"name": "blur", "kind": "gaussian", "sigma": 1.0, "noise_sigma": 0.2})
    est = blur.init_estimate(blur.measure(torch.full((1, 3, 16, 16), 0.05), make_generator(0, "y")))
    assert float(est.min()) >= 0  # an estimate whose error is not modelled as noise is clamped
