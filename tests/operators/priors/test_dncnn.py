from __future__ import annotations

import pytest
import torch

from operators.priors.dncnn import DnCNN, DnCNNPrior

from ._data import SHARED_DATA, load_image, needs_shared_data, psnr

# Zhang et al. 2017 (TIP), Table III, DnCNN-S at sigma 25: C.man, House, Peppers.
PUBLISHED = {"01.png": 30.18, "02.png": 33.06, "03.png": 30.87}


def test_residual_architecture_matches_kair_keys():
    keys = list(DnCNN().state_dict())
    assert keys[0] == "model.0.weight" and keys[-1] == "model.32.bias" and len(keys) == 34


def test_rgb_is_denoised_channelwise_and_other_sigmas_warn_once():
    prior = DnCNNPrior(DnCNN(depth=3, width=8))
    x = torch.rand(2, 3, 12, 12)
    out = prior.denoise(x, 25 / 255)
    torch.testing.assert_close(out[:, 1:2], prior.net(x[:, 1:2]))
    with pytest.warns(UserWarning, match="ignores the requested sigma"):
        again = prior.denoise(x, 0.5)
    torch.testing.assert_close(again, out)  # sigma is ignored
    assert prior.nfe.forward == 2 and prior.sigma_min == prior.sigma_max == pytest.approx(25 / 255)


def test_missing_weights_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        DnCNNPrior.from_weights(tmp_path / "nope.pth")


@needs_shared_data
def test_set12_sigma25_reaches_the_published_psnr():
    prior = DnCNNPrior.from_weights()
    g = torch.Generator().manual_seed(0)
    got = {}
    for name, ref in PUBLISHED.items():
        x = load_image(SHARED_DATA / "eval" / "Set12" / name, "L")
        y = x + 25 / 255 * torch.randn(x.shape, generator=g)
        with torch.no_grad():
            got[name] = psnr(prior.denoise(y, 25 / 255).clamp(0, 1), x)
        assert abs(got[name] - ref) < 0.3, (name, got[name], ref)
    assert sum(got.values()) / len(got) > 29.5
