from __future__ import annotations

import pytest
import torch

from operators.priors.diffusers_text import PromptEncoder


class FakeTokenizer:
    model_max_length = 5

    def __call__(self, prompts, padding, max_length, truncation, return_tensors):
        assert padding == "max_length" and max_length == 5 and truncation and return_tensors == "pt"
        ids = [ord(c) % 7 for c in prompts[0]][:max_length]
        return type("Tok", (), {"input_ids": torch.tensor([ids + [0] * (max_length - len(ids))])})()


class FakeEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(7, 3)

    def forward(self, ids):
        return (self.emb(ids),)


def test_encoder_path_pads_encodes_caches_and_expands():
    enc = PromptEncoder(3, FakeTokenizer(), FakeEncoder())
    e = enc("cat", batch=2, device=torch.device("cpu"), dtype=torch.float64)
    assert e.shape == (2, 5, 3) and e.dtype == torch.float64
    ids = torch.tensor([[ord("c") % 7, ord("a") % 7, ord("t") % 7, 0, 0]])
    torch.testing.assert_close(e[1].float(), enc.text_encoder(ids)[0][0])
    assert set(enc._cache) == {"cat"}


def test_without_encoder_the_empty_prompt_is_an_error_unless_zeros_are_allowed():
    enc = PromptEncoder(3, prompt_embeds={"a dog": torch.ones(1, 4, 3)}, why_no_encoder="no text_encoder")
    enc.check("a dog")
    for prompt in ("", "a cat"):
        with pytest.raises(ValueError, match="no text_encoder"):
            enc.check(prompt)
    with pytest.raises(ValueError, match="allow_zero_prompt: true"):
        enc("", 1, torch.device("cpu"), torch.float32)
    given = PromptEncoder(3, prompt_embeds={"": torch.full((1, 4, 3), 0.5)})
    given.check("")
    assert (given("", 2, torch.device("cpu"), torch.float32) == 0.5).all()


def test_without_encoder_precomputed_embeds_then_allowed_zeros_with_warning_then_error():
    embeds = {"a dog": torch.ones(1, 4, 3)}
    enc = PromptEncoder(3, prompt_embeds=embeds, why_no_encoder="transformers is not installed",
                        allow_zero_prompt=True)
    torch.testing.assert_close(enc("a dog", 1, torch.device("cpu"), torch.float32), embeds["a dog"])
    with pytest.warns(UserWarning, match="transformers is not installed.*ZEROS"):
        zeros = enc("", 2, torch.device("cpu"), torch.float32)
    assert zeros.shape == (2, 77, 3) and not zeros.any()
    with pytest.raises(ValueError, match="transformers is not installed"):
        enc("a cat", 1, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match=r"\(1, L, 3\)"):
        PromptEncoder(3, prompt_embeds={"x": torch.ones(1, 4, 5)})
