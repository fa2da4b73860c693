"""Every solver with the pretrained-denoiser priors (FFDNet, blind DnCNN-B): the sigmas D is
asked for stay inside the prior's trained range, and on the real FFDNet DiffPIR and LATINO-style
Langevin denoise a real image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from solver_testkit import gen, mask_op

from operators.degradations import Denoise, Noise
from operators.metrics import psnr
from operators.priors import build_prior
from operators.priors.dncnn import BLIND_RANGE, BLIND_SIGMA_MIN, DnCNN, DnCNNPrior
from operators.priors.ffdnet import FFDNet, FFDNetPrior
from operators.solvers import SOLVERS, get_solver, solver_config

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
NFE = {"pnp_ula": 12}  # others: 6
CONFIG = {"ud2m": {"unfolding": "untrained"},  # no trained unfolding in the tests
          "indigo": {"weights": "untrained", "denoiser": "prior"}, "irsde": {"weights": "untrained"},
          "conditional": {"weights": "untrained"}}
OWN_NETWORK = {"conditional", "irsde"}  # blind solvers that never call the prior


class Recording:
    """Mixin: keep every sigma the solver hands to ``_denoise``."""

    def _denoise(self, x, sigma, prompt):
        self.seen.append(sigma.clone())
        return super()._denoise(x, sigma, prompt)


class RecFFDNet(Recording, FFDNetPrior):
    pass


class RecDnCNN(Recording, DnCNNPrior):
    pass


def tiny(kind: str):
    torch.manual_seed(0)  # test fixture only: nn.Conv2d initialises from the global RNG
    prior = RecFFDNet(FFDNet(3, 8, 3)) if kind == "ffdnet" else \
        RecDnCNN(DnCNN(depth=3, width=8, channels=3), trained=BLIND_RANGE, sigma_min=BLIND_SIGMA_MIN)
    prior.seen = []
    return prior


@pytest.mark.parametrize("kind", ["ffdnet", "dncnn_b"])
@pytest.mark.parametrize("name", SOLVERS.names())
def test_every_solver_asks_only_for_trained_sigmas(name, kind):
    prior, op = tiny(kind), mask_op((9, 13), 0.05)
    y = op.measure(torch.rand(1, 3, 9, 13, generator=gen(2)), gen(0))
    out = get_solver(name)(y, op, prior, nfe=NFE.get(name, 6), generator=gen(1),
                           config=solver_config(name, **CONFIG.get(name, {})))
    assert out.x.shape == (1, 3, 9, 13) and torch.isfinite(out.x).all() and out.nfe == NFE.get(name, 6)
    if name in OWN_NETWORK:
        assert prior.seen == []
        return
    seen = torch.cat(prior.seen)
    assert seen.min() >= prior.sigma_min * (1 - 1e-6) and seen.max() <= prior.sigma_max * (1 + 1e-6)


def test_schedule_spans_the_ffdnet_range():
    prior = tiny("ffdnet")
    get_solver("diffpir")(torch.rand(1, 3, 8, 8), Denoise(noise=Noise(sigma=0.1)), prior, nfe=6,
                          generator=gen(0), config=solver_config("diffpir"))
    first, last = float(prior.seen[0]), float(prior.seen[-1])
    assert first == pytest.approx(75 / 255) and last == pytest.approx(1 / 255)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real weights not found at {SHARED}")
@pytest.mark.parametrize("name, nfe", [("diffpir", 8), ("langevin", 4)])
def test_real_ffdnet_denoises_a_real_crop(name, nfe):
    a = np.asarray(Image.open(SHARED / "eval" / "CBSD68" / "101087.png").convert("RGB"), dtype=np.float32) / 255
    x = torch.from_numpy(a).permute(2, 0, 1)[None, :, 100:164, 100:164].contiguous()
    op = Denoise(noise=Noise(sigma=25 / 255))
    y = op.measure(x, gen(0))
    out = get_solver(name)(y, op, build_prior({"name": "ffdnet"}), nfe=nfe, generator=gen(1),
                           config=solver_config(name))
    gain = float(psnr(out.x, x) - psnr(y.clamp(0, 1), x))
    assert gain > 5.0, gain  # measured: diffpir +6.5 dB, langevin +7.1 dB (from 23.0 dB)
