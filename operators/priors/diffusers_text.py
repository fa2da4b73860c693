"""Prompt -> text embeddings for a diffusers UNet2DConditionModel.

With a tokenizer and text encoder (the model directory's ``tokenizer``/``text_encoder``,
loaded through ``transformers``) a prompt is encoded as Stable Diffusion 1.x/2.x pipelines do
(padded to the tokenizer's max length, last hidden state). Without them (``transformers`` not
installed, or a UNet-only model): precomputed ``prompt_embeds`` are used for their prompt; any
other prompt is an error, the empty one included, unless ``allow_zero_prompt`` lets "" fall back
to zeros (with a warning): zeros are NOT the encoding of "" for a real model, so pass
``prompt_embeds`` to get the model's true unconditional behaviour.
Two-encoder models (SDXL) need pooled embeddings and time ids: not supported here.
"""
from __future__ import annotations

import warnings

import torch


class PromptEncoder:
    """``__call__(prompt, batch, device, dtype)`` -> (batch, L, cross_attention_dim)."""

    def __init__(
        self,
        cross_attention_dim: int,
        tokenizer=None,
        text_encoder: torch.nn.Module | None = None,
        prompt_embeds: dict[str, torch.Tensor] | None = None,
        why_no_encoder: str = "no text encoder was given",
        seq_len: int = 77,
        allow_zero_prompt: bool = False,
    ):
        self.dim = int(cross_attention_dim)
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.eval().requires_grad_(False) if text_encoder is not None else None
        self.why_no_encoder = why_no_encoder
        self.allow_zero_prompt = bool(allow_zero_prompt)
        self.seq_len = int(getattr(tokenizer, "model_max_length", seq_len) or seq_len)
        self._cache: dict[str, torch.Tensor] = {}
        for p, e in (prompt_embeds or {}).items():
            e = torch.as_tensor(e)
            e = e[None] if e.ndim == 2 else e
            if e.ndim != 3 or e.shape[0] != 1 or e.shape[-1] != self.dim:
                raise ValueError(f"prompt_embeds[{p!r}] must be (1, L, {self.dim}), got {tuple(e.shape)}")
            self._cache[p] = e.detach()
        self._warned = False

    @property
    def has_encoder(self) -> bool:
        return self.tokenizer is not None and self.text_encoder is not None

    def check(self, prompt: str) -> None:
        """Raise now (at load, not mid-solve) when ``prompt`` cannot be embedded."""
        if prompt in self._cache or self.has_encoder or (prompt == "" and self.allow_zero_prompt):
            return
        self._encode(prompt)  # raises, naming what to pass

    def _encode(self, prompt: str) -> torch.Tensor:
        if self.has_encoder:
            ids = self.tokenizer(
                [prompt], padding="max_length", max_length=self.seq_len, truncation=True, return_tensors="pt"
            ).input_ids
            dev = next(self.text_encoder.parameters()).device
            with torch.no_grad():
                return self.text_encoder(ids.to(dev))[0].detach()
        if prompt == "" and self.allow_zero_prompt:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.why_no_encoder}: the empty prompt is conditioned on ZEROS, not on the model's "
                    'encoding of "" (pass prompt_embeds={"": tensor} for the true unconditional embedding)',
                    stacklevel=4,
                )
            return torch.zeros(1, self.seq_len, self.dim)
        raise ValueError(
            f"cannot encode the prompt {prompt!r}: {self.why_no_encoder}. Install transformers and use a "
            f"model directory with tokenizer/ and text_encoder/, or pass precomputed "
            f"prompt_embeds={{prompt: (1, L, {self.dim})}}"
            + (" (or set allow_zero_prompt: true to condition the empty prompt on zeros, which is not "
               "the model's encoding of \"\")" if prompt == "" else "")
        )

    def __call__(self, prompt: str, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if prompt not in self._cache:
            self._cache[prompt] = self._encode(prompt)
        return self._cache[prompt].to(device=device, dtype=dtype).expand(batch, -1, -1)
