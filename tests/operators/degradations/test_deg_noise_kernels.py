"""Noise models, kernel files and samplers, masks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from operators.degradations import Blur, Noise, SuperResolution, build_degradation
from operators.degradations.kernels import (
    gaussian_kernel,
    load_kernel,
    psf2otf,
    sample_motion_kernel,
)
from operators.degradations.masks import pack_mask, sample_mask, unpack_mask

KERNELS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "eval" / "blur_kernels"
G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731


def test_gaussian_noise_std_and_poisson_mean():
    y = torch.full((4, 3, 64, 64), 0.4)
    n = Noise(sigma=0.1)(y, G(0)) - y
    assert abs(float(n.std()) - 0.1) < 0.002 and abs(float(n.mean())) < 0.002
    peak = 20.0
    p = Noise(peak=peak)(y, G(0))
    assert abs(float(p.mean()) - 0.4) < 0.005  # E[Poisson(peak y) / peak] = y
    assert abs(float(p.var()) - 0.4 / peak) < 0.002  # Var = y / peak
    assert torch.equal(Noise(peak=peak)(y, G(3)), Noise(peak=peak)(y, G(3)))
    assert torch.equal(Noise()(y, None), y)


def test_measure_adds_noise_to_forward():
    op = build_degradation({"name": "sr", "scale": 2, "noise_sigma": 0.05})
    x = torch.rand(2, 3, 32, 32, generator=G(0))
    r = op.measure(x, G(1)) - op.forward(x)
    assert abs(float(r.std()) - 0.05) < 0.004


def test_gaussian_kernel_shape_and_anisotropy():
    k = gaussian_kernel(2.0)
    assert k.shape == (13, 13) and abs(k.sum() - 1) < 1e-12 and np.allclose(k, k.T)
    a = gaussian_kernel((3.0, 1.0), angle=90.0)  # long axis turned to vertical
    assert a[:, 9].sum() > a[9, :].sum() * 2


@pytest.mark.parametrize("name,index,shape", [("Levin09.mat", 0, (19, 19)), ("Levin09.mat", 7, (23, 23)),
                                              ("kernels_12.mat", 11, (25, 25)), ("kernels_bicubicx234.mat", 2, (25, 25)),
                                              ("k_large_1.png", 0, (67, 67))])
def test_kernel_files_load(name, index, shape):
    if not KERNELS.is_dir():
        pytest.skip(f"real blur kernels not found at {KERNELS}")
    k = load_kernel(KERNELS / name, index)
    assert k.shape == shape and abs(k.sum() - 1) < 1e-9
    assert k.min() >= 0 or "bicubic" in name  # the bicubic kernels have negative lobes
    op = build_degradation({"name": "blur", "kind": "motion", "kernel_file": str(KERNELS / name), "index": index})
    x = torch.rand(1, 3, 48, 40, dtype=torch.float64)
    assert abs(float(op.forward(x).mean() - x.mean())) < 1e-12  # a normalized kernel keeps the mean


def test_levin_v73_is_read_untransposed():
    """h5py returns MATLAB arrays transposed; the loader transposes back (checked against the
    file's own layout: the same kernel read as a plain HDF5 dataset is the transpose)."""
    if not KERNELS.is_dir():
        pytest.skip(f"real blur kernels not found at {KERNELS}")
    import h5py

    with h5py.File(KERNELS / "Levin09.mat", "r") as f:
        raw = np.asarray(f[f["kernels"][()].ravel(order="F")[1]][()])
    k = load_kernel(KERNELS / "Levin09.mat", 1)
    np.testing.assert_allclose(k, raw.T / raw.sum())


def test_motion_kernel_sampler():
    k = sample_motion_kernel(G(0), size=25)
    assert k.shape == (25, 25) and abs(k.sum() - 1) < 1e-12 and k.min() >= 0
    assert (k > 0).sum() > 10  # a trajectory, not a point
    np.testing.assert_array_equal(k, sample_motion_kernel(G(0), size=25))
    assert Blur(kind="motion").bind((32, 32), G(0)).kernel.shape == (25, 25)


def test_psf2otf_wraps_large_kernels():
    k = np.random.default_rng(0).random((9, 9))
    small = psf2otf(k, 5, 6, "cpu", torch.float64)
    assert torch.allclose(small[0, 0].real, torch.tensor(k.sum(), dtype=torch.float64))


def test_blur_decimate_accepts_kernel_file():
    if not KERNELS.is_dir():
        pytest.skip(f"real blur kernels not found at {KERNELS}")
    op = SuperResolution(scale=2, mode="blur_decimate", kernel_file=str(KERNELS / "kernels_bicubicx234.mat"))
    assert op.forward(torch.rand(1, 3, 32, 32)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("kind,frac", [("random", 0.7), ("box", 0.25), ("freeform", 0.2)])
def test_masks_fraction_pack_and_determinism(kind, frac):
    m = sample_mask(kind, (48, 64), G(0), frac)
    assert m.dtype == bool and m.shape == (48, 64)
    assert abs((~m).mean() - frac) < (0.05 if kind != "freeform" else 0.15)
    np.testing.assert_array_equal(unpack_mask(pack_mask(m)), m)
    np.testing.assert_array_equal(sample_mask(kind, (48, 64), G(0), frac), m)
