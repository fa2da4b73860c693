"""IMDN from its published checkpoint, the `init` estimator key, and the `imdn` baseline."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from operators.baselines import get_baseline
from operators.degradations import build_degradation
from operators.degradations.estimated import WithEstimate, with_estimate
from operators.estimators import build_estimator, split_init
from operators.estimators.imdn import load_imdn
from operators.metrics.psnr import psnr_y
from operators.priors import build_prior
from operators.seeding import make_generator
from operators.solvers import get_solver, row_config
from operators.solvers.presets import task_family
from tests.conftest import shared_data
from tests.operators.priors._data import center_crop, load_image, psnr

SR4 = {"name": "sr", "scale": 4, "mode": "bicubic", "noise_sigma": 0.01}


@pytest.fixture(scope="module")
def weights() -> str:
    return str(shared_data() / "weights" / "IMDN_x4.pth")


def test_imdn_matches_its_published_set5_x4_psnr(weights, one_thread):
    """The paper's Table: Set5 x4 32.21 dB (Y channel, 4-pixel border, 8-bit output)."""
    net = load_imdn(weights)
    root = shared_data() / "eval" / "Set5"
    scores = []
    for hr_file in sorted((root / "HR").glob("*.png")):
        lr = load_image(root / "LR_bicubic" / "X4" / f"{hr_file.stem}x4.png")
        with torch.no_grad():
            x = (net(lr).clamp(0, 1) * 255).round() / 255
        hr = load_image(hr_file)[..., : x.shape[-2], : x.shape[-1]]
        scores.append(float(psnr_y(x, hr, crop_border=4)))
    assert len(scores) == 5
    assert abs(np.mean(scores) - 32.21) < 0.05


def test_a_file_of_another_network_is_refused_by_name(tmp_path):
    other = shared_data() / "weights" / "dncnn_25.pth"
    with pytest.raises(ValueError, match="not an IMDN checkpoint"):
        load_imdn(other)
    with pytest.raises(FileNotFoundError, match="IMDN weights not found"):
        load_imdn(tmp_path / "missing.pth")


def test_init_key_is_split_off_and_checked(weights):
    init, rest = split_init({"preset": "auto", "init": {"name": "imdn"}, "lam": 1.0})
    assert init == {"name": "imdn"} and rest == {"preset": "auto", "lam": 1.0}
    assert build_estimator(None) is None
    with pytest.raises(ValueError, match="unknown init estimator 'swinir'; valid: imdn"):
        build_estimator({"name": "swinir"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['scale'\] in init: imdn"):
        build_estimator({"name": "imdn", "weights": weights, "scale": 2})
    est = build_estimator({"name": "imdn", "weights": weights})
    for spec in ({"name": "denoise", "noise_sigma": 0.1}, {"name": "sr", "scale": 2}, {**SR4, "mode": "area"}):
        with pytest.raises(ValueError, match="init: imdn estimates x from 4x MATLAB-bicubic"):
            with_estimate(build_degradation(spec), est)


def test_the_wrapped_operator_is_the_operator_but_for_its_start(weights):
    op = build_degradation(SR4)
    est = build_estimator({"name": "imdn", "weights": weights})
    w = with_estimate(op, est)
    x = torch.rand(1, 3, 32, 32, generator=make_generator(0, "x"))
    y = op.measure(x, make_generator(0, "y"))
    assert w.name == "sr" and w.linear and w.exact_prox and w == WithEstimate(op, est)
    assert w.spec() == op.spec() and w.sigma_n == op.sigma_n
    torch.testing.assert_close(w.forward(x), op.forward(x))
    torch.testing.assert_close(w.prox(x, y, 3.0), op.prox(x, y, 3.0))
    torch.testing.assert_close(w.init_estimate(y), est(y))
    assert not torch.allclose(w.init_estimate(y), op.init_estimate(y))
    assert w.init_sigma == est.init_sigma > 0 and task_family(w) == "refine" and task_family(op) == "sr"
    assert pickle.loads(pickle.dumps(w)) == w and w.bind((1, 3, 32, 32), None) == w
    with pytest.raises(AttributeError, match="immutable"):
        w.scale = 2
    cfg, preset = row_config("diffpir", {}, w)
    assert preset == "refine" and cfg.sigma_max < 0.1  # starts near the estimate, not from noise


def test_solvers_started_from_imdn_beat_bicubic_on_real_photos(weights, one_thread):
    """Two CBSD68 crops, x4 bicubic SR at noise 0.01: every refine preset keeps (most of) the
    IMDN gain over the bicubic start; the baseline `imdn` is the estimator alone."""
    files = sorted((shared_data() / "eval" / "CBSD68").glob("*.png"))[:2]
    prior = build_prior({"name": "embedded"})
    est = build_estimator({"name": "imdn", "weights": weights})
    op = build_degradation(SR4)
    gains = {}
    for i, f in enumerate(files):
        x = center_crop(load_image(f), 96)
        y = op.measure(x, make_generator(0, "y", i))
        bicubic = psnr(op.init_estimate(y), x)
        alone = get_baseline("imdn")(y, op)
        torch.testing.assert_close(alone, est(y))
        gains.setdefault("imdn", []).append(psnr(alone, x) - bicubic)
        for name, nfe in (("diffpir", 4), ("langevin", 4)):
            w = with_estimate(op, est)
            cfg, _ = row_config(name, {}, w)
            out = get_solver(name)(y, w, prior, nfe=nfe, generator=make_generator(0, "s", i), config=cfg)
            gains.setdefault(name, []).append(psnr(out.x, x) - bicubic)
    means = {k: float(np.mean(v)) for k, v in gains.items()}
    assert means["imdn"] > 0.5, means
    assert means["diffpir"] > 0.4 and means["langevin"] > 0.3, means


def test_the_resolved_config_shows_the_refine_preset():
    """--dry-run / the recorded config: a solver with init runs the refine family's values."""
    from operators.solvers.presets import preset_values
    from pipelines.spec_defaults import resolve_solver

    got = resolve_solver({"name": "diffpir", "nfe": 20, "init": {"name": "imdn"}}, SR4)
    want = preset_values("diffpir", "refine")
    assert want and {k: got[k] for k in want} == want and got["init"] == {"name": "imdn"}
