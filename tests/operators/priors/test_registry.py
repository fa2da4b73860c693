from __future__ import annotations

import pytest
import torch

from operators.priors import PRIORS, GaussianPrior, build_prior, prior_keys
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, save_edm_unet
from operators.priors.embedded import EmbeddedPixelPrior
from operators.registry import UnknownNameError

from ._data import needs_shared_data


def test_names():
    assert PRIORS.names() == ["diffusers", "dncnn", "dvdnet", "embedded", "embedded_latent", "ffdnet", "gaussian"]


def test_gaussian_spec_builds_the_exact_prior():
    prior = build_prior({"name": "gaussian", "s2": 0.1, "mean": 0.5})
    assert isinstance(prior, GaussianPrior) and prior.s2 == 0.1
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(prior.denoise(x, 0.2), 0.5 + (x - 0.5) / (1 + 0.04 / 0.1))


def test_errors_list_the_valid_choices():
    with pytest.raises(UnknownNameError, match="valid choices: diffusers, dncnn, dvdnet, embedded"):
        build_prior({"name": "nope"})
    msg = r"unknown key\(s\) \['weight'\] for prior 'embedded'; valid keys: name, weights, grey, dtype"
    with pytest.raises(ValueError, match=msg):
        build_prior({"name": "embedded", "weight": "x"})
    with pytest.raises(ValueError, match=r"needs key\(s\) \['model'\]"):
        build_prior({"name": "diffusers"})
    with pytest.raises(ValueError, match="needs a 'name'"):
        build_prior({"weights": "x"})
    assert "prompt" in prior_keys("diffusers") and "device" not in prior_keys("diffusers")


def test_embedded_from_a_weights_path(tmp_path):
    cfg = EDMUNetConfig(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4)
    save_edm_unet(EDMUNet(cfg), tmp_path / "tiny.safetensors")
    prior = build_prior({"name": "embedded", "weights": str(tmp_path / "tiny.safetensors")})
    assert isinstance(prior, EmbeddedPixelPrior) and prior.net.config == cfg
    with pytest.raises(FileNotFoundError, match="restoray run configs/train-prior.yaml"):
        build_prior({"name": "embedded", "weights": str(tmp_path / "missing.safetensors")})


def test_diffusers_spec_loads_a_saved_model(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)  # test fixture only: diffusers initialises weights from the global RNG
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                                 block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    sched = diffusers.DDPMScheduler(num_train_timesteps=50)
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path)
    prior = build_prior({"name": "diffusers", "model": str(tmp_path), "local_files_only": True})
    assert prior.space == "pixel" and prior.denoise(torch.rand(1, 3, 8, 8), 0.3).shape == (1, 3, 8, 8)


@needs_shared_data
def test_dncnn_spec_loads_the_real_weights():
    prior = build_prior({"name": "dncnn"})
    assert prior.name == "dncnn" and prior.sigma_max == pytest.approx(25 / 255)
