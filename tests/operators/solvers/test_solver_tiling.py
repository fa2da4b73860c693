"""TiledPrior: coverage, exactness for pointwise D, one NFE per call, and no seams."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from solver_testkit import ConvPrior, denoise_op, gaussian_prior, gen

from operators.solvers import get_solver, solver_config
from operators.solvers.tiling import TiledPrior, ramp_window, tile_starts


def smooth_image(shape, seed=0):
    """A smooth random field in about [0.2, 0.8]: white noise blurred twice by a 9x9 box."""
    x = torch.rand(shape, generator=gen(seed))
    k = torch.ones(shape[1], 1, 9, 9) / 81
    for _ in range(2):
        x = F.conv2d(F.pad(x, (4, 4, 4, 4), mode="reflect"), k, groups=shape[1])
    return 0.5 + (x - x.mean()) * 6


def border_positions(length, tile, overlap):
    """Where a tiling could leave a seam: every tile start and end and each overlap's middle."""
    starts = tile_starts(length, tile, overlap)
    pos = {s for s in starts[1:]} | {s + tile for s in starts[:-1]}
    pos |= {(b + a + tile) // 2 for a, b in zip(starts, starts[1:])}
    return sorted(pos)


def seam_ratio(img, tile, overlap):
    """mean |x[j] - x[j-1]| across tile borders / the same elsewhere (columns and rows)."""
    ratios = []
    for dim in (-1, -2):
        d = img.diff(dim=dim).abs().movedim(dim, 0)  # d[j - 1] = |x[j] - x[j - 1]|
        pos = [p - 1 for p in border_positions(img.shape[dim], tile, overlap)]
        rest = [j for j in range(d.shape[0]) if j not in pos]
        ratios.append(float(d[pos].mean() / d[rest].mean()))
    return max(ratios)


@pytest.mark.parametrize("length", [1, 31, 32, 33, 57, 96, 100, 257])
def test_tiles_cover_with_overlap(length):
    tile, overlap = 32, 8
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_ramps_are_a_partition_of_unity():
    w_left = ramp_window(32, 8, True, False, torch.float64, "cpu")
    w_right = ramp_window(32, 8, False, True, torch.float64, "cpu")
    assert torch.allclose(w_left[-8:] + w_right[:8], torch.ones(8, dtype=torch.float64))


def test_pointwise_prior_is_reproduced_exactly_and_counted_once():
    prior = gaussian_prior()
    x = torch.rand(2, 3, 77, 50, generator=gen(0))
    tiled = TiledPrior(prior, max_pixels=32 * 32, tile=32, overlap=8)
    out = tiled.denoise(x, 0.3)
    assert prior.nfe.forward == 1  # nine tiles, one whole-image NFE (the counter is shared)
    assert torch.allclose(out, prior._denoise(x, torch.full((2,), 0.3), None), atol=1e-6)


def test_conv_denoiser_has_no_seams():
    prior = ConvPrior()
    x = smooth_image((1, 3, 96, 96))
    sigma = torch.full((1,), 0.1)
    whole = prior._denoise(x, sigma, None)
    tiled = TiledPrior(prior, max_pixels=32 * 32, tile=32, overlap=8).denoise(x, 0.1)
    hard = TiledPrior(prior, max_pixels=32 * 32, tile=32, overlap=0).denoise(x, 0.1)
    # the check can see a seam: abutting tiles (no overlap, no blending) show one
    assert seam_ratio(hard, 32, 0) > 1.5 * seam_ratio(whole, 32, 0)
    # blended tiles: borders look like everywhere else, as in the untiled output
    assert seam_ratio(tiled, 32, 8) < 1.1 * seam_ratio(whole, 32, 8)
    # and the tiled output is close to the untiled one (the zero-padding error at tile edges
    # is faded out by the ramp: weights sin^2(pi (t + 0.5) / 16) < 0.09 on the outer 2 pixels)
    assert float((tiled - whole).abs().max()) < 0.1 * float((hard - whole).abs().max()) + 1e-3


def test_solver_tiles_automatically():
    """A whole DiffPIR run in tiles stays close to the untiled run, with no seam; NFE unchanged."""
    prior, op = ConvPrior(), denoise_op(0.05)
    x = smooth_image((1, 3, 64, 64))
    y = op.measure(x, gen(1))
    solve, common = get_solver("diffpir"), dict(sigma_max=1.0, zeta=0.0)

    def restore(**tiling):
        return solve(y, op, prior, nfe=6, generator=gen(2), config=solver_config("diffpir", **common, **tiling))

    whole = restore()
    tiled = restore(tile_max_pixels=32 * 32, tile_size=32, tile_overlap=8)
    hard = restore(tile_max_pixels=32 * 32, tile_size=32, tile_overlap=0)
    assert whole.nfe == tiled.nfe == 6
    # six steps compound the tile-edge error of D (measured max 0.028, mean 0.001 blended;
    # max 0.54, mean 0.013 for abutting tiles)
    diff, diff_hard = (tiled.x - whole.x).abs(), (hard.x - whole.x).abs()
    assert float(diff.mean()) < 0.2 * float(diff_hard.mean()) and float(diff.max()) < 0.05
    assert seam_ratio(tiled.x, 32, 8) < 1.1 * seam_ratio(whole.x, 32, 8)
    assert seam_ratio(hard.x, 32, 0) > 1.5 * seam_ratio(whole.x, 32, 0)


def test_dps_backpropagates_through_tiles():
    """Autograd flows through the tiled D: tiled DPS stays close to untiled DPS."""
    prior, op = ConvPrior(), denoise_op(0.05)
    y = op.measure(smooth_image((1, 3, 48, 48)), gen(1))
    solve = get_solver("dps")
    cfgs = [solver_config("dps", sigma_max=0.5, **t) for t in ({}, dict(tile_max_pixels=24 * 24, tile_size=24, tile_overlap=8))]
    whole, tiled = (solve(y, op, prior, nfe=4, generator=gen(2), config=c) for c in cfgs)
    assert whole.nfe_backward == tiled.nfe_backward == 4
    assert float((tiled.x - whole.x).abs().mean()) < 0.005
