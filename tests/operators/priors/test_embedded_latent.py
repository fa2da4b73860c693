from __future__ import annotations

import pytest
import torch

from operators.priors.autoencoder import (
    AutoencoderConfig,
    ConvAutoencoder,
    save_autoencoder,
)
from operators.priors.base import GaussianPrior
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, save_edm_unet
from operators.priors.embedded_latent import (
    METADATA_KEY,
    EmbeddedLatentPrior,
    LatentPriorConfig,
)

AE = AutoencoderConfig(latent_channels=4, channels=(8, 16, 16), blocks=1)
NET = EDMUNetConfig(in_channels=4, out_channels=4, channels=(8, 16), blocks=(1, 1), emb_dim=16,
                    fourier_features=8, groups=4)


def _save(tmp_path, cfg: LatentPriorConfig):
    save_autoencoder(ConvAutoencoder(AE), tmp_path / "codec.safetensors")
    save_edm_unet(EDMUNet(NET), tmp_path / "lat.safetensors", extra={METADATA_KEY: cfg.to_json()})
    return tmp_path / "lat.safetensors"


def test_fit_gives_zero_mean_and_sigma_data_std():
    z = 3.0 + 7.0 * torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cfg = LatentPriorConfig.fit(z)
    scaled = (z.double() - cfg.latent_shift) * cfg.latent_scale
    assert abs(scaled.mean().item()) < 1e-9 and scaled.std().item() == pytest.approx(0.5)


def test_load_and_denoise_in_the_scaled_latent(tmp_path):
    cfg = LatentPriorConfig(codec=str(tmp_path / "codec.safetensors"), latent_shift=0.1, latent_scale=3.0)
    prior = EmbeddedLatentPrior.from_weights(_save(tmp_path, cfg))
    assert prior.space == "latent" and prior.channels == 4 and prior.codec.factor == 4
    x = torch.rand(1, 3, 32, 32)
    z = prior.encode(x)
    torch.testing.assert_close(z, (prior.codec.inner.encode(x) - 0.1) * 3.0)
    assert z.shape == (1, 4, 8, 8) and prior.decode(z).shape == x.shape
    # untrained network: D = c_skip z, the exact Gaussian prior with variance sigma_data^2
    ref = GaussianPrior(s2=0.25, mean=0.0)
    torch.testing.assert_close(prior.denoise(z, 0.7), ref.denoise(z, 0.7))
    assert prior.nfe.forward == 1


def test_missing_files_and_channel_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="restoray run configs/train-prior.yaml"):
        EmbeddedLatentPrior.from_weights(tmp_path / "absent.safetensors")
    path = _save(tmp_path, LatentPriorConfig(codec=str(tmp_path / "gone.safetensors")))
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        EmbeddedLatentPrior.from_weights(path)
    prior = EmbeddedLatentPrior.from_weights(path, codec_weights=tmp_path / "codec.safetensors")
    assert prior.config.codec.endswith("gone.safetensors")
    with pytest.raises(ValueError, match="channels"):
        EmbeddedLatentPrior(EDMUNet(NET), ConvAutoencoder(AutoencoderConfig(latent_channels=8)), LatentPriorConfig())


def test_training_job_metadata_with_plain_latent_scale(tmp_path):
    # pipelines/training/objectives.py stores the latent std as "latent_scale" (a divisor)
    save_autoencoder(ConvAutoencoder(AE), tmp_path / "codec.safetensors")
    save_edm_unet(EDMUNet(NET), tmp_path / "lat.safetensors",
                  extra={"latent_scale": "4.0", "codec": str(tmp_path / "codec.safetensors")})
    prior = EmbeddedLatentPrior.from_weights(tmp_path / "lat.safetensors")
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(prior.encode(x), prior.codec.inner.encode(x) / 4.0)
