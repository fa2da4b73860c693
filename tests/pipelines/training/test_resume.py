"""Both training loops resume exactly: N - 1 steps, then a run resumed to N, end with the same
weights, EMA, optimiser and generator state and history as N steps in one go. In Ray Train's
local mode (tests/pipelines/training/local_fit.py), so the check costs seconds;
tests/pipelines/test_train_*.py run each job once on a real Ray."""
from __future__ import annotations

import json

import torch

from tests.pipelines.test_train_prior import _cfg as prior_cfg, _images
from tests.pipelines.test_train_unfolded import _cfg as unfolded_cfg
from tests.pipelines.training.local_fit import fit_local


def _state(ckpt_dir):
    state = torch.load(ckpt_dir / "latest" / "state.pt", weights_only=True)
    return state, json.loads((ckpt_dir / "latest" / "history.json").read_text())


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


def _straight_and_resumed(loop, make_cfg, tmp_path, steps: int) -> None:
    """``steps`` in one run; ``steps - 1``, then resumed to ``steps``: the same end state."""
    fit_local(loop, make_cfg(tmp_path / "straight", steps=steps))
    fit_local(loop, make_cfg(tmp_path / "resumed", steps=steps - 1))
    _, before = _state(tmp_path / "resumed" / "ckpt")
    fit_local(loop, make_cfg(tmp_path / "resumed", steps=steps))
    straight, h1 = _state(tmp_path / "straight" / "ckpt")
    resumed, h2 = _state(tmp_path / "resumed" / "ckpt")
    assert h2[:-1] == before  # the first steps' entries (their timings too) came from the checkpoint
    assert [h["step"] for h in h2] == list(range(1, steps + 1))
    for h in h1 + h2:
        h.pop("seconds")
    assert h1 == h2  # losses and learned values step by step
    _assert_same(straight, resumed)  # weights, EMA, Adam moments, generator state


def test_prior_loop_resumes_exactly(tmp_path):
    from pipelines.training.loop import train_loop

    def make_cfg(root, steps):
        data = root / "data"
        if not data.is_dir():
            root.mkdir()
            _images(data)
        return prior_cfg(root, str(data), steps=steps, log_every=1, checkpoint_every=1)

    _straight_and_resumed(train_loop, make_cfg, tmp_path, steps=3)


def test_unfolded_loop_resumes_exactly(tmp_path):
    from pipelines.training.unfolded_loop import train_unfolded_loop

    def make_cfg(root, steps):
        return unfolded_cfg(root, steps=steps, val_images=0, patch=16)

    _straight_and_resumed(train_unfolded_loop, make_cfg, tmp_path, steps=3)
