"""Load a DiffusersPrior with ``from_pretrained`` from a local directory or a hub id.

Layouts: a pipeline directory (model_index.json; components in unet/, scheduler/, vae/,
text_encoder/, tokenizer/) or a bare model directory (config.json + scheduler_config.json at
the top, or in the subfolders you name). Nothing is downloaded when HF_HUB_OFFLINE is set
(or ``local_files_only=True``); a model that is not there gives a DiffusersModelNotFound that
names it and says how to provide it.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from operators.priors.diffusers_backend import DiffusersPrior
from operators.priors.diffusers_codec import SUPPORTED as SUPPORTED_VAES
from operators.priors.diffusers_codec import DiffusersCodec
from operators.priors.diffusers_text import PromptEncoder

SUPPORTED_UNETS = ("UNet2DModel", "UNet2DConditionModel")


class DiffusersModelNotFound(FileNotFoundError):
    """A diffusers model (or one of its parts) is neither a local directory nor in the cache."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _not_found(model: str, part: str, tried: list[str | None], cause: Exception) -> DiffusersModelNotFound:
    where = ", ".join(repr(s or ".") for s in tried)
    offline = " HF_HUB_OFFLINE is set, so nothing is downloaded." if _offline() else ""
    return DiffusersModelNotFound(
        f"diffusers model {model!r}: could not load its {part} (subfolders tried: {where}).{offline} "
        f"Provide it as a local directory (one written by save_pretrained, or `hf download {model} "
        f"--local-dir DIR`) and pass that path as model, or pre-download it into the Hugging Face cache "
        f"(HF_HOME) on a machine with network access, with HF_HUB_OFFLINE unset. Cause: {cause}"
    )


def _load_config(model: str, subfolders: list[str | None], part: str, local_only: bool) -> tuple[dict, str | None]:
    """The first config found among ``subfolders`` -> (config dict, subfolder)."""
    from diffusers import ConfigMixin

    class _Any(ConfigMixin):
        config_name = "scheduler_config.json" if part == "scheduler" else "config.json"

    err: Exception = OSError("no candidate subfolder")
    for sub in subfolders:
        try:
            return dict(_Any.load_config(model, subfolder=sub, local_files_only=local_only)), sub
        except (OSError, ValueError) as e:
            err = e
    raise _not_found(model, part, subfolders, err)


def _model_index(model: str, local_only: bool) -> dict[str, Any]:
    from diffusers import DiffusionPipeline

    try:
        return dict(DiffusionPipeline.load_config(model, local_files_only=local_only))
    except (OSError, ValueError):
        return {}  # not a pipeline layout: a bare model directory


def _alphas_cumprod(cfg: dict) -> tuple[torch.Tensor, str]:
    """alphas_cumprod and prediction_type from a scheduler config (any DDPM-family scheduler)."""
    import diffusers

    cls = getattr(diffusers, str(cfg.get("_class_name")), None)
    sched = cls.from_config(cfg) if cls is not None else None
    if sched is None or getattr(sched, "alphas_cumprod", None) is None:
        if cls is None or "FlowMatch" in cls.__name__:
            raise ValueError(
                f"scheduler {cfg.get('_class_name')!r} has no alphas_cumprod (flow-matching models are not supported)"
            )
        sched = diffusers.DDPMScheduler.from_config(cfg)
    return torch.as_tensor(sched.alphas_cumprod, dtype=torch.float64), str(cfg.get("prediction_type", "epsilon"))


def _text_encoder(model: str, index: dict, local_only: bool, dtype, device):
    """(tokenizer, text_encoder, why_not) from the pipeline's tokenizer/ and text_encoder/."""
    if "text_encoder" not in index or "tokenizer" not in index:
        return None, None, "the model has no text_encoder/tokenizer"
    try:
        import transformers
    except ImportError:
        return None, None, "transformers is not installed"
    enc_cls = getattr(transformers, index["text_encoder"][1], None) or transformers.AutoModel
    tok = transformers.AutoTokenizer.from_pretrained(model, subfolder="tokenizer", local_files_only=local_only)
    enc = enc_cls.from_pretrained(model, subfolder="text_encoder", torch_dtype=dtype, local_files_only=local_only)
    return tok, enc.to(device), ""


def load_diffusers_prior(
    model: str,
    *,
    subfolder: str | None = None,
    scheduler_subfolder: str | None = None,
    vae: str | bool | None = None,
    vae_subfolder: str | None = None,
    prompt: str = "",
    prompt_embeds: dict[str, torch.Tensor] | None = None,
    prediction_type: str | None = None,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device = "cpu",
    local_files_only: bool | None = None,
    allow_zero_prompt: bool = False,
) -> DiffusersPrior:
    """A DiffusersPrior from ``model`` (local path or hub id).

    subfolder: the UNet's (default ``unet`` in a pipeline, else the top level).
    vae: None = the pipeline's own ``vae/`` if it has one; False = none (pixel prior); a path
    or hub id = that VAE (AutoencoderKL or AutoencoderTiny), in ``vae_subfolder``.
    prediction_type overrides the scheduler config's. ``prompt`` is the default prompt; a
    conditional UNet without a text encoder needs ``prompt_embeds`` for it, or
    ``allow_zero_prompt`` (the empty prompt on zeros) -- checked here, at load.
    """
    import diffusers

    local_only = _offline() if local_files_only is None else bool(local_files_only)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = str(model)
    index = _model_index(model, local_only)
    unet_subs = [subfolder] if subfolder is not None else (["unet"] if "unet" in index else [None, "unet"])
    unet_cfg, unet_sub = _load_config(model, unet_subs, "UNet", local_only)
    kind = unet_cfg.get("_class_name")
    if kind not in SUPPORTED_UNETS:
        raise ValueError(f"{model!r}: unsupported UNet class {kind!r}; supported: {', '.join(SUPPORTED_UNETS)}")
    sched_subs = [scheduler_subfolder] if scheduler_subfolder is not None else ["scheduler", unet_sub, None]
    sched_cfg, _ = _load_config(model, list(dict.fromkeys(sched_subs)), "scheduler", local_only)
    alphas_cumprod, pred = _alphas_cumprod(sched_cfg)
    try:
        unet = getattr(diffusers, kind).from_pretrained(
            model, subfolder=unet_sub, torch_dtype=dtype, local_files_only=local_only
        )
    except OSError as e:
        raise _not_found(model, "UNet weights", [unet_sub], e) from e

    codec = None
    if vae is None and "vae" in index:
        vae, vae_subfolder = model, "vae"
    if vae:
        vsubs = [vae_subfolder] if vae_subfolder is not None else [None, "vae"]
        vcfg, vsub = _load_config(str(vae), vsubs, "VAE", local_only)
        if vcfg.get("_class_name") not in SUPPORTED_VAES:
            raise ValueError(
                f"unsupported VAE class {vcfg.get('_class_name')!r}; supported: {', '.join(SUPPORTED_VAES)}"
            )
        vmodel = getattr(diffusers, vcfg["_class_name"]).from_pretrained(
            str(vae), subfolder=vsub, torch_dtype=dtype, local_files_only=local_only
        )
        codec = DiffusersCodec(vmodel.to(device))

    encoder = None
    if kind == "UNet2DConditionModel":
        tok, enc, why = _text_encoder(model, index, local_only, dtype, device)
        encoder = PromptEncoder(unet.config.cross_attention_dim, tok, enc, prompt_embeds, why_no_encoder=why,
                                allow_zero_prompt=allow_zero_prompt)
        encoder.check(prompt)
    prior = DiffusersPrior(unet.to(device), alphas_cumprod, prediction_type or pred, codec, encoder, prompt)
    prior.model_id = model
    return prior
