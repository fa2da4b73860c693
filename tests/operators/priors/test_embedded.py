from __future__ import annotations

import pytest
import torch

from operators.priors.base import GaussianPrior
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, save_edm_unet
from operators.priors.embedded import EmbeddedPixelPrior

TINY = dict(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4)


def test_untrained_prior_is_the_gaussian_prior_of_sigma_data():
    # F = 0 at init, so D'(x', s') = c_skip x' with sigma_data = 0.5 in [-1, 1]: in [0, 1] units
    # that is the exact Gaussian prior with mean 0.5 and variance (0.5 / 2)^2.
    prior = EmbeddedPixelPrior(EDMUNet(EDMUNetConfig(**TINY)))
    ref = GaussianPrior(s2=0.0625, mean=0.5)
    x = torch.rand(2, 3, 9, 11)
    for sigma in (0.01, 0.2, 5.0):
        torch.testing.assert_close(prior.denoise(x, sigma), ref.denoise(x, sigma))
    assert prior.nfe.forward == 3


def test_adapter_only_rescales():
    net = EDMUNet(EDMUNetConfig(**TINY))
    with torch.no_grad():
        net.out.weight.normal_(0, 0.1)
    prior = EmbeddedPixelPrior(net)
    x = torch.rand(2, 3, 16, 16)
    sigma = torch.tensor([0.05, 0.3])
    torch.testing.assert_close(prior.denoise(x, sigma), (net(2 * x - 1, 2 * sigma) + 1) / 2)
    assert prior.sigma_min == pytest.approx(0.001) and prior.sigma_max == pytest.approx(40.0)


def test_grey_network_denoises_rgb_channelwise():
    net = EDMUNet(EDMUNetConfig(in_channels=1, out_channels=1, **TINY))
    with torch.no_grad():
        net.out.weight.normal_(0, 0.1)
    prior = EmbeddedPixelPrior(net)
    x = torch.rand(1, 3, 8, 8)
    out = prior.denoise(x, 0.1)
    for c in range(3):
        torch.testing.assert_close(out[:, c : c + 1], prior.denoise(x[:, c : c + 1], 0.1))
    with pytest.raises(ValueError, match="grey"):
        EmbeddedPixelPrior(EDMUNet(EDMUNetConfig(**TINY))).denoise(torch.rand(1, 1, 8, 8), 0.1)


def test_from_weights_path_and_missing_file(tmp_path):
    net = EDMUNet(EDMUNetConfig(**TINY))
    save_edm_unet(net, tmp_path / "p.safetensors")
    prior = EmbeddedPixelPrior.from_weights(tmp_path / "p.safetensors")
    assert prior.net.config == net.config and not any(p.requires_grad for p in prior.parameters())
    with pytest.raises(FileNotFoundError) as err:
        EmbeddedPixelPrior.from_weights(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(err.value) and "restoray run configs/train-prior.yaml" in str(err.value)
    with pytest.raises(FileNotFoundError, match="no_such_name.safetensors"):
        EmbeddedPixelPrior.from_weights("no_such_name")
