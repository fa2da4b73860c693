from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from operators.priors import build_prior
from operators.priors.ffdnet import SIGMA_MAX, FFDNet, FFDNetPrior, subp_order

from ._data import SHARED_DATA, needs_shared_data
from ._matconvnet_file import conv_stack, ffdnet_reference, random_convs, write_simplenn


def tiny_ffdnet_file(path, channels: int = 3, width: int = 8, seed: int = 0):
    """A random FFDNet in the published layout (SubP, concat, conv/relu x3, SubP)."""
    convs = random_convs([(4 * channels + 1, width), (width, width), (width, 4 * channels)], seed)
    layers = [{"type": "SubP", "scale": 0.5}, {"type": "concat"},
              *conv_stack([{"type": "conv", "weights": c} for c in convs]), {"type": "SubP", "scale": 2.0}]
    return write_simplenn(path, layers), convs


@pytest.fixture
def tiny(tmp_path):
    path, convs = tiny_ffdnet_file(tmp_path / "ffdnet.mat")
    return FFDNetPrior.from_weights(path), convs


def test_matches_the_matconvnet_semantics(tiny):
    """Reordered SubP channels + swapped filter axes == the raw file run on the transposed image."""
    prior, convs = tiny
    x = torch.rand(2, 3, 10, 14)
    torch.testing.assert_close(prior.denoise(x, 0.1), ffdnet_reference(convs, x, 0.1), atol=1e-5, rtol=1e-5)
    assert prior.channels == 3 and prior.space == "pixel" and prior.nfe.forward == 1
    assert (prior.sigma_min, prior.sigma_max) == pytest.approx((1 / 255, 75 / 255))


def test_odd_sizes_repeat_the_last_row_and_column(tiny):
    prior, convs = tiny
    x = torch.rand(1, 3, 9, 13)
    out = prior.denoise(x, 0.2)
    assert out.shape == x.shape
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    torch.testing.assert_close(padded[..., -1, :-1], x[..., -1, :])
    torch.testing.assert_close(out, ffdnet_reference(convs, padded, 0.2)[..., :9, :13], atol=1e-5, rtol=1e-5)


def test_deterministic_per_image_sigma_and_clamped_above_the_range(tiny):
    prior, _ = tiny
    x = torch.rand(2, 3, 8, 8)
    a = prior.denoise(x, torch.tensor([0.05, 0.2]))
    torch.testing.assert_close(a, prior.denoise(x, torch.tensor([0.05, 0.2])), rtol=0, atol=0)
    torch.testing.assert_close(a[1:], prior.denoise(x[1:], 0.2), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(a[:1], prior.denoise(x[:1], 0.2))  # the noise map is used
    torch.testing.assert_close(prior.denoise(x, 1.0), prior.denoise(x, SIGMA_MAX), rtol=0, atol=0)
    assert not torch.allclose(prior.denoise(x, 1.0), prior.denoise(x, 0.9 * SIGMA_MAX))


def test_grey_net_on_rgb_per_channel_and_colour_net_on_grey_averaged(tmp_path, tiny):
    grey = FFDNetPrior.from_weights(tiny_ffdnet_file(tmp_path / "g.mat", channels=1, seed=1)[0])
    assert grey.channels == 1
    x = torch.rand(1, 3, 8, 6)
    out = grey.denoise(x, 0.1)
    torch.testing.assert_close(out[:, 2:], grey.denoise(x[:, 2:], 0.1), atol=1e-6, rtol=1e-6)
    colour, _ = tiny
    g = torch.rand(1, 1, 8, 6)
    torch.testing.assert_close(colour.denoise(g, 0.1), colour.denoise(g.expand(1, 3, 8, 6), 0.1).mean(1, keepdim=True))
    with pytest.raises(ValueError, match="3-channel denoiser cannot take a 2-channel image"):
        colour.denoise(torch.rand(1, 2, 8, 8), 0.1)


def test_subp_order_is_an_involution_keeping_channels_outermost():
    order = subp_order(3)
    assert order[:4] == [0, 2, 1, 3] and sorted(order) == list(range(12))
    assert [order[k] for k in order] == list(range(12))


def test_loader_refuses_other_networks(tmp_path):
    convs = [{"type": "conv", "weights": c} for c in random_convs([(3, 4), (4, 3)])]
    path = write_simplenn(tmp_path / "dncnn.mat", conv_stack(convs))
    with pytest.raises(ValueError, match="is not an FFDNet"):
        FFDNetPrior.from_weights(path)
    with pytest.raises(FileNotFoundError, match="FFDNet_color.mat or FFDNet_gray.mat"):
        FFDNetPrior.from_weights(tmp_path / "missing.mat")


def test_spec_round_trip_and_unknown_keys(tmp_path):
    path, _ = tiny_ffdnet_file(tmp_path / "f.mat")
    prior = build_prior({"name": "ffdnet", "weights": str(path)})
    assert isinstance(prior, FFDNetPrior) and prior.name == "ffdnet"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['sigma'\] for prior 'ffdnet'; valid keys: name, weights"):
        build_prior({"name": "ffdnet", "weights": str(path), "sigma": 0.1})


@needs_shared_data
def test_published_files_load():
    colour = build_prior({"name": "ffdnet"})  # default: FFDNet_color.mat
    grey = build_prior({"name": "ffdnet", "weights": str(SHARED_DATA / "weights" / "FFDNet_gray.mat")})
    assert isinstance(colour.net, FFDNet) and colour.channels == 3 and grey.channels == 1
    assert len([m for m in colour.net.model if isinstance(m, torch.nn.Conv2d)]) == 12
    assert colour.net.model[0].out_channels == 96 and grey.net.model[0].out_channels == 64
