from __future__ import annotations

import warnings

import pytest
import torch

from operators.priors import build_prior
from operators.priors.dncnn import DnCNN, DnCNNPrior

from ._data import SHARED_DATA, load_image, needs_shared_data, psnr
from ._matconvnet_file import conv_stack, random_convs, run_transposed, write_simplenn

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


def _blind_file(tmp_path, channels: int = 3):
    convs = random_convs([(channels, 8), (8, 8), (8, channels)])
    layers = conv_stack([{"type": "conv", "weights": c} for c in convs])
    return write_simplenn(tmp_path / "GD_tiny_Blind.mat", layers), convs


def test_a_mat_file_is_a_blind_dncnn_b_matching_the_matconvnet_semantics(tmp_path):
    path, convs = _blind_file(tmp_path)
    prior = DnCNNPrior.from_weights(path)
    assert prior.channels == 3 and (prior.sigma_min, prior.sigma_max) == pytest.approx((1 / 255, 55 / 255))
    x = torch.rand(2, 3, 9, 12)
    ref = x - run_transposed(convs, x.transpose(-1, -2)).transpose(-1, -2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no off-sigma warning anywhere in [0, 55/255]
        out = prior.denoise(x, 0.0)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(prior.denoise(x, 55 / 255), out, rtol=0, atol=0)  # blind
    with pytest.warns(UserWarning, match=r"sigma in \[0.0000, 0.2157\] and ignores .* blind denoiser"):
        prior.denoise(x, 0.5)


def test_colour_dncnn_on_grey_input_averages_the_replicated_channels(tmp_path):
    prior = DnCNNPrior.from_weights(_blind_file(tmp_path)[0])
    g = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(prior.denoise(g, 0.1), prior.denoise(g.expand(1, 3, 8, 8), 0.1).mean(1, keepdim=True))


def test_an_ffdnet_file_is_not_a_dncnn(tmp_path):
    convs = [{"type": "conv", "weights": c} for c in random_convs([(5, 4), (4, 4)])]
    path = write_simplenn(tmp_path / "f.mat", [{"type": "SubP", "scale": 0.5}, {"type": "concat"},
                                               *conv_stack(convs), {"type": "SubP", "scale": 2.0}])
    with pytest.raises(ValueError, match="is not a DnCNN"):
        DnCNNPrior.from_weights(path)


@needs_shared_data
def test_published_colour_blind_file_loads_by_spec():
    prior = build_prior({"name": "dncnn", "weights": str(SHARED_DATA / "weights" / "GD_Color_Blind.mat")})
    assert isinstance(prior, DnCNNPrior) and prior.channels == 3 and prior.sigma_max == pytest.approx(55 / 255)
    assert len([m for m in prior.net.model if isinstance(m, torch.nn.Conv2d)]) == 20
