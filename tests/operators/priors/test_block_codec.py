"""The block codec: untrained it is exactly whitened block PCA; it saves, loads and trains."""
from __future__ import annotations

import pytest
import torch

from operators.priors.autoencoder import load_autoencoder
from operators.priors.block_codec import BlockCodec, BlockCodecConfig, save_block_codec

SMALL = BlockCodecConfig(latent_channels=6, width=8, blocks=1)


def _images(n: int = 4, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(n, 3, size + 4, size + 4, generator=g), 5, 1)
    return (0.7 * smooth + 0.3 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def _block_cov(codec: BlockCodec, x: torch.Tensor) -> torch.Tensor:
    u = codec._blocks(x).permute(0, 2, 3, 1).reshape(-1, codec.mean.numel()).double()
    return torch.cov(u.T)


def test_untrained_codec_is_whitened_pca():
    x = _images()
    codec = BlockCodec(SMALL).fit_pca(x)
    z = codec.encode(x)
    assert z.shape == (4, 6, 8, 8)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 6).double()
    torch.testing.assert_close(torch.cov(flat.T), torch.eye(6, dtype=torch.float64), atol=1e-4, rtol=0)
    # reconstruction error in [-1, 1] units = the variance of the dropped components (PCA optimality)
    evals = torch.linalg.eigvalsh(_block_cov(codec, x)).flip(0)
    n = flat.shape[0]
    expected = float(evals[6:].sum()) * (n - 1) / n / codec.mean.numel()
    with torch.no_grad():
        err = float((2 * codec.decode(z) - 2 * x).pow(2).mean())
    assert err == pytest.approx(expected, rel=1e-3)


def test_full_rank_codec_reconstructs_exactly():
    x = _images()
    codec = BlockCodec(BlockCodecConfig(latent_channels=48, width=8, blocks=1)).fit_pca(x)
    torch.testing.assert_close(codec(x), x, atol=1e-4, rtol=0)


def test_save_load_round_trip_through_the_codec_loader(tmp_path):
    codec = BlockCodec(SMALL).fit_pca(_images())
    save_block_codec(codec, tmp_path / "c.safetensors")
    back = load_autoencoder(tmp_path / "c.safetensors")
    assert isinstance(back, BlockCodec) and back.config == codec.config and back.factor == 4
    x = _images(1)
    torch.testing.assert_close(back(x), codec(x), rtol=0, atol=0)


def test_training_improves_on_pca_and_reaches_every_parameter():
    x = _images(8)
    codec = BlockCodec(SMALL).fit_pca(x)
    opt = torch.optim.Adam(codec.parameters(), lr=2e-3)
    with torch.no_grad():
        start = float(torch.nn.functional.mse_loss(codec(x), x))
    for step in range(40):
        loss = torch.nn.functional.mse_loss(codec(x), x)
        opt.zero_grad()
        loss.backward()
        if step == 1:  # after one step the zero-initialised output convs pass gradients on
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in codec.parameters())
        opt.step()
    with torch.no_grad():
        assert float(torch.nn.functional.mse_loss(codec(x), x)) < 0.85 * start


def test_bad_sizes_and_configs_are_rejected_clearly():
    with pytest.raises(ValueError, match="divisible by 4"):
        BlockCodec(SMALL).encode(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="exceeds the 48 values"):
        BlockCodec(BlockCodecConfig(latent_channels=49))
