"""NIQE: the MATLAB value on a known image, clean < degraded, and the pristine-model fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.conftest import REPO, shared_data

from operators.metrics.niqe import (
    DEFAULT_NIQE_MODEL,
    NIQEModel,
    aggd_fit,
    imresize_half,
    niqe,
    niqe_distance,
    niqe_features,
    niqe_window,
    to_luma255,
)
from operators.metrics.niqe_fit import (
    fit_niqe_pristine,
    load_image,
    main,
    sharp_patch_features,
)


@pytest.fixture(scope="module")
def published() -> NIQEModel:
    return NIQEModel.load(shared_data() / "weights" / "niqe_pris_params.npz")


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    t = torch.arange(-8, 9, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (8, 8, 0, 0), mode="replicate"), k, groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, 8, 8), mode="replicate"), k.transpose(-1, -2), groups=x.shape[1])


def test_window_equals_published_file():
    with np.load(shared_data() / "weights" / "niqe_pris_params.npz") as d:
        np.testing.assert_allclose(niqe_window().numpy(), d["gaussian_window"], atol=1e-12)


def test_baboon_matches_matlab(published):
    # MATLAB R2021a niqe() on Set14 baboon is 5.72957338 (value quoted in BasicSR's niqe.py for
    # the same image under the same pristine parameters).
    x = load_image(shared_data() / "eval" / "Set14" / "baboon.bmp")
    assert abs(niqe(x, published).item() - 5.72957338) < 2e-4


def test_clean_scores_lower_than_degraded(published):
    ev = shared_data() / "eval" / "CBSD68"
    x = torch.cat([load_image(ev / n) for n in ("101085.png", "102061.png")])  # 481x321
    g = torch.Generator().manual_seed(0)
    versions = {
        "clean": x, "noisy": (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1), "blurred": _blur(x, 3.0),
    }
    feats = {k: niqe_features(to_luma255(v))[0] for k, v in versions.items()}  # features once, two models
    for model in (published, NIQEModel.load(DEFAULT_NIQE_MODEL)):
        s = {k: torch.stack([niqe_distance(f, model) for f in v]) for k, v in feats.items()}
        assert ((s["clean"] > 2) & (s["clean"] < 10)).all(), s
        assert (s["noisy"] > s["clean"] + 2).all() and (s["blurred"] > s["clean"] + 2).all(), s


def test_default_model_is_shipped_file():
    assert DEFAULT_NIQE_MODEL == REPO / "weights" / "niqe_pristine_restoray.npz"
    m = NIQEModel.load()
    assert m.mu.shape == (36,) and m.cov.shape == (36, 36)
    assert torch.allclose(m.cov, m.cov.T) and torch.linalg.eigvalsh(m.cov).min() > 0


def test_imresize_half_on_ramp_and_constant():
    ramp = torch.arange(16, dtype=torch.float64).expand(1, 1, 16, 16)
    out = imresize_half(ramp)
    assert out.shape == (1, 1, 8, 8)
    # interior outputs of a linear ramp sit halfway between two inputs (symmetric kernel)
    torch.testing.assert_close(out[0, 0, :, 2:-2], (2 * torch.arange(2, 6) + 0.5).double().expand(8, 4))
    torch.testing.assert_close(imresize_half(torch.full((1, 1, 10, 12), 7.0, dtype=torch.float64)),
                               torch.full((1, 1, 5, 6), 7.0, dtype=torch.float64))


def test_aggd_fit_recovers_a_gaussian():
    g = torch.Generator().manual_seed(0)
    v = 3.0 * torch.randn(200_000, generator=g, dtype=torch.float64)
    alpha, bl, br = aggd_fit(v)
    assert abs(alpha.item() - 2.0) < 0.05  # GGD shape 2 is the Gaussian
    assert abs(bl.item() - 3.0 * 2**0.5) < 0.05 and abs(br.item() - 3.0 * 2**0.5) < 0.05


def test_fit_pristine_cli(tmp_path, capsys):
    data = shared_data() / "train" / "BSDS400_color"
    out = tmp_path / "m.npz"
    main(["--data", str(data), "--out", str(out), "--max-images", "3", "--threshold", "0"])
    assert "fitted on 45 sharp patches of 3 images" in capsys.readouterr().out  # 481x321: 15 blocks each
    m = NIQEModel.load(out)
    assert m.mu.shape == (36,) and m.mu.isfinite().all()
    assert torch.allclose(m.cov, m.cov.T) and torch.linalg.eigvalsh(m.cov).min() > 0


def test_fit_pristine_is_mean_and_cov_of_block_features():
    g = torch.Generator().manual_seed(2)
    images = [(0.5 + 0.1 * (k % 5 + 1) * torch.randn(3, 96, 96, generator=g)).clamp(0, 1) for k in range(40)]
    mu, cov = fit_niqe_pristine(images)  # one block per image: always the sharpest, always kept
    feats = niqe_features(to_luma255(torch.stack(images)))[0][:, 0]  # (40, 36), batched
    torch.testing.assert_close(mu, feats.mean(0))
    torch.testing.assert_close(cov, torch.cov(feats.T))


def test_sharpness_selects_textured_blocks():
    g = torch.Generator().manual_seed(0)
    img = torch.full((1, 1, 96, 192), 0.5)
    img[..., :96] += 0.2 * torch.randn(1, 1, 96, 96, generator=g)  # left block textured, right flat
    feats = sharp_patch_features([img.clamp(0, 1)], threshold=0.75)
    want, _ = niqe_features(to_luma255(img.clamp(0, 1)))
    assert feats.shape == (1, 36) and torch.equal(feats[0], want[0, 0])
    assert sharp_patch_features([img.clamp(0, 1)], threshold=0.0).shape == (2, 36)  # both kept


def test_too_small_image_raises():
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe(torch.rand(1, 3, 64, 200))
