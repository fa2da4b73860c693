"""The diffusers backend on tiny random models saved to disk and loaded as users load them."""
from __future__ import annotations

import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from operators.priors.diffusers_loader import (  # noqa: E402
    DiffusersModelNotFound,
    load_diffusers_prior,
)
from operators.priors.diffusers_sigmas import DiscreteSigmas  # noqa: E402

UNET = dict(sample_size=8, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4,
            down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
KL = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
          norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
          scaling_factor=0.5)
TINY_AE = dict(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
               num_decoder_blocks=(1, 1), latent_channels=4, scaling_factor=1.5)


def _pixel_pipeline(root, prediction_type):
    torch.manual_seed(0)  # test fixture only: diffusers initialises weights from the global RNG
    unet = diffusers.UNet2DModel(in_channels=3, out_channels=3, **UNET)
    sched = diffusers.DDPMScheduler(num_train_timesteps=100, prediction_type=prediction_type, clip_sample=False)
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(root)
    return root


def _sd_like_pipeline(root):
    """unet/ (conditional), scheduler/, vae/ and a model_index naming a text encoder that is absent."""
    torch.manual_seed(0)
    diffusers.UNet2DConditionModel(
        in_channels=4, out_channels=4, cross_attention_dim=8, attention_head_dim=2, **{**UNET,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D")},
    ).save_pretrained(root / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=100, clip_sample=False).save_pretrained(root / "scheduler")
    diffusers.AutoencoderKL(**KL).save_pretrained(root / "vae")
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
             "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "DDPMScheduler"],
             "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"]}
    (root / "model_index.json").write_text(json.dumps(index))
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("diffusers")
    torch.manual_seed(0)
    diffusers.AutoencoderTiny(**TINY_AE).save_pretrained(base / "taesd")
    return {"eps": _pixel_pipeline(base / "eps", "epsilon"), "v": _pixel_pipeline(base / "v", "v_prediction"),
            "sd": _sd_like_pipeline(base / "sd"), "taesd": base / "taesd"}


@pytest.mark.parametrize("kind", ["eps", "v"])
def test_D_reproduces_the_scheduler_x0_at_integer_steps(models, kind):
    prior = load_diffusers_prior(str(models[kind]), local_files_only=True)
    sched = diffusers.DDPMScheduler.from_pretrained(models[kind], subfolder="scheduler")
    assert prior.space == "pixel" and prior.prediction_type == sched.config.prediction_type
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 8, 8, generator=g)
    for t in (0, 17, 60, 99):
        abar = sched.alphas_cumprod[t]
        sigma = ((1 - abar) / abar).sqrt().item()  # model units ([-1, 1])
        x_sigma = 2 * x0 - 1 + sigma * torch.randn(x0.shape, generator=g)
        x_t = abar.sqrt() * x_sigma
        with torch.no_grad():
            out = prior.unet(x_t, t).sample
            x0_sched = sched.step(out, t, x_t).pred_original_sample
            d = prior.denoise((x_sigma + 1) / 2, sigma / 2)  # pixel units
        torch.testing.assert_close(2 * d - 1, x0_sched, rtol=1e-5, atol=1e-5)
    assert prior.nfe.forward == 4


def test_fractional_steps_follow_log_sigma_interpolation(models):
    prior = load_diffusers_prior(str(models["eps"]), local_files_only=True)
    sch = prior.schedule
    k = 40
    mid = (sch.sigmas[k] * sch.sigmas[k + 1]).sqrt()  # halfway in log-sigma
    assert sch.sigma_to_t(mid[None]).item() == pytest.approx(k + 0.5, abs=1e-9)
    t = torch.tensor([0.0, 3.25, 50.5, 98.9, 99.0], dtype=torch.float64)
    torch.testing.assert_close(sch.sigma_to_t(sch.t_to_sigma(t)), t)
    assert sch.sigma_to_t(torch.tensor([1e-9, 1e9])).tolist() == [0.0, 99.0]  # clamped to the range
    assert prior.sigma_min == pytest.approx(sch.sigma_min / 2) and prior.sigma_max == pytest.approx(sch.sigma_max / 2)
    with pytest.raises(ValueError, match="decrease"):
        DiscreteSigmas(torch.tensor([0.5, 0.9]))


def test_latent_prior_with_kl_vae_prompts_and_zeros_fallback(models):
    with pytest.raises(ValueError, match="allow_zero_prompt"):  # no text encoder, no embeds: said at load
        load_diffusers_prior(str(models["sd"]), local_files_only=True)
    prior = load_diffusers_prior(str(models["sd"]), local_files_only=True, allow_zero_prompt=True)
    assert prior.space == "latent" and prior.codec.factor == 2 and prior.codec.scaling_factor == 0.5
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        z = prior.encode(x)
        torch.testing.assert_close(z, prior.codec.vae.encode(2 * x - 1).latent_dist.mode() * 0.5)
        assert z.shape == (1, 4, 8, 8) and prior.decode(z).shape == x.shape
        with pytest.warns(UserWarning, match="transformers is not installed|ZEROS"):
            d0 = prior.denoise(z, 1.0)  # empty prompt, no text encoder: zeros, said loudly
        assert d0.shape == z.shape
        with pytest.raises(ValueError, match="prompt_embeds"):
            prior.denoise(z, 1.0, prompt="a photo of a cat")
    embeds = {"a photo of a cat": torch.randn(1, 77, 8, generator=torch.Generator().manual_seed(3))}
    cat = load_diffusers_prior(str(models["sd"]), prompt="a photo of a cat", prompt_embeds=embeds,
                               local_files_only=True)
    with torch.no_grad():
        assert not torch.allclose(cat.denoise(z, 1.0), d0)


def test_autoencoder_tiny_as_the_codec(models):
    prior = load_diffusers_prior(str(models["sd"]), vae=str(models["taesd"]), local_files_only=True,
                                 allow_zero_prompt=True)
    vae = prior.codec.vae
    assert type(vae).__name__ == "AutoencoderTiny" and prior.codec.factor == 2
    x = torch.rand(2, 3, 8, 12)
    with torch.no_grad():
        z = prior.encode(x)
        torch.testing.assert_close(z, vae.encode(2 * x - 1).latents * 1.5)
        torch.testing.assert_close(prior.decode(z), (vae.decode(z / 1.5).sample + 1) / 2)
    assert z.shape == (2, 4, 4, 6)
    pixel = load_diffusers_prior(str(models["eps"]), vae=False, local_files_only=True)
    assert pixel.codec is None and pixel.space == "pixel"


def test_missing_model_names_it_and_says_how_to_provide_it(tmp_path):
    for model in (str(tmp_path / "not-here"), "someone/not-downloaded"):
        with pytest.raises(DiffusersModelNotFound) as err:
            load_diffusers_prior(model, local_files_only=True)
        msg = str(err.value)
        assert model in msg and "local directory" in msg and "HF_HUB_OFFLINE unset" in msg
