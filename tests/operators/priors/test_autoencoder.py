from __future__ import annotations

import pytest
import torch

from operators.priors.autoencoder import (
    AutoencoderConfig,
    ConvAutoencoder,
    load_autoencoder,
    save_autoencoder,
)
from operators.priors.scaled_codec import ScaledCodec

SMALL = AutoencoderConfig(latent_channels=4, channels=(8, 16, 16), blocks=1)


def test_factor_4_shapes_and_default_size():
    ae = ConvAutoencoder(SMALL)
    x = torch.rand(2, 3, 24, 36)
    z = ae.encode(x)
    assert z.shape == (2, 4, 6, 9) and ae.decode(z).shape == x.shape and ae(x).shape == x.shape
    assert ae.factor == 4 and ae.latent_channels == 4
    n = sum(p.numel() for p in ConvAutoencoder().parameters())
    assert n < 3e6


def test_sizes_not_divisible_by_4_are_rejected_clearly():
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvAutoencoder(SMALL).encode(torch.rand(1, 3, 30, 32))


def test_save_load_round_trip(tmp_path):
    ae = ConvAutoencoder(SMALL)
    save_autoencoder(ae, tmp_path / "ae.safetensors")
    back = load_autoencoder(tmp_path / "ae.safetensors")
    assert back.config == ae.config
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(back(x), ae(x), rtol=0, atol=0)


def test_scaled_codec_applies_shift_and_scale():
    ae = ConvAutoencoder(SMALL)
    codec = ScaledCodec(ae, shift=0.3, scale=2.5)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(codec.encode(x), (ae.encode(x) - 0.3) * 2.5)
    z = torch.randn(1, 4, 4, 4)
    torch.testing.assert_close(codec.decode(z), ae.decode(z / 2.5 + 0.3))
    assert codec.factor == 4 and codec.latent_channels == 4
