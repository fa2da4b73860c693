"""Blur kernels: Gaussian (isotropic / anisotropic), random motion trajectories, kernel files,
and the circular-convolution transfer function (psf2otf) used by blur and sr."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def gaussian_kernel(sigma: float | tuple[float, float] | list[float], angle: float = 0.0,
                    size: int | None = None) -> np.ndarray:
    """A normalized (size, size) Gaussian; ``sigma`` a float (isotropic) or (sigma_x, sigma_y)
    along axes rotated by ``angle`` degrees (anisotropic). Default size 2 ceil(3 max sigma) + 1."""
    sx, sy = (float(sigma), float(sigma)) if np.isscalar(sigma) else (float(sigma[0]), float(sigma[1]))
    if sx <= 0 or sy <= 0:
        raise ValueError(f"gaussian sigma must be > 0, got {sigma}")
    if size is None:
        size = 2 * math.ceil(3 * max(sx, sy)) + 1
    t = math.radians(angle)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    cov = rot @ np.diag([sx**2, sy**2]) @ rot.T
    r = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    pts = np.stack([xx, yy], -1)
    q = np.einsum("...i,ij,...j->...", pts, np.linalg.inv(cov), pts)
    k = np.exp(-0.5 * q)
    return k / k.sum()


def load_kernel(path: str | Path, index: int = 0) -> np.ndarray:
    """Kernel ``index`` from a .mat (v5 via scipy, v7.3 via h5py: a cell array of kernels or one
    2-D / 3-D numeric array), an image (.png ...), or .npy; normalized to sum 1."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        k = _load_mat_kernel(path, index)
    elif suffix == ".npy":
        k = np.load(path)
        k = k[..., index] if k.ndim == 3 else k
    else:
        from PIL import Image

        with Image.open(path) as im:
            k = np.asarray(im.convert("F"), dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.sum() <= 0:
        raise ValueError(f"kernel {index} of {path} is not a 2-D kernel with a positive sum (shape {k.shape})")
    return k / k.sum()


def _load_mat_kernel(path: Path, index: int) -> np.ndarray:
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
        arrays = [v for k, v in data.items() if not k.startswith("__")]
        arr = data["kernels"] if "kernels" in data else arrays[0]
        if arr.dtype == object:
            return np.asarray(arr.flat[index], dtype=np.float64)
        return arr[..., index] if arr.ndim == 3 else arr
    except NotImplementedError:  # MATLAB v7.3 = HDF5; arrays are stored transposed
        import h5py

        with h5py.File(path, "r") as f:
            name = "kernels" if "kernels" in f else next(k for k in f if not k.startswith("#"))
            ds = f[name]
            if ds.dtype == h5py.ref_dtype:
                refs = ds[()].ravel(order="F")
                return np.asarray(f[refs[index]][()], dtype=np.float64).T
            arr = np.asarray(ds[()], dtype=np.float64).T
            return arr[..., index] if arr.ndim == 3 else arr


def sample_motion_kernel(generator: torch.Generator, size: int = 25, steps: int = 200) -> np.ndarray:
    """A random camera-shake kernel: a 2-D random walk with inertia (in the spirit of Boracchi &
    Foi 2012), scaled to a random length in [size/4, 0.8 size], splatted bilinearly, centred."""
    u = lambda *s: torch.rand(*s, generator=generator, dtype=torch.float64).numpy()  # noqa: E731
    n = lambda *s: torch.randn(*s, generator=generator, dtype=torch.float64).numpy()  # noqa: E731
    inertia, jitter = 0.7 + 0.25 * u(1)[0], 0.2 + 0.6 * u(1)[0]
    angle = 2 * math.pi * u(1)[0]
    v = np.array([math.cos(angle), math.sin(angle)])
    pos = np.zeros((steps, 2))
    for i in range(1, steps):
        v = inertia * v + jitter * n(2)
        v /= max(np.linalg.norm(v), 1e-8)
        pos[i] = pos[i - 1] + v
    pos -= pos.mean(0)
    length = size * (0.25 + 0.55 * u(1)[0])
    extent = max(np.abs(pos).max(), 1e-8)
    pos *= (length / 2) / extent
    pos += (size - 1) / 2
    k = np.zeros((size, size))
    x0, y0 = np.floor(pos[:, 0]).astype(int), np.floor(pos[:, 1]).astype(int)
    fx, fy = pos[:, 0] - x0, pos[:, 1] - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), w)
    return k / k.sum()


def psf2otf(kernel: np.ndarray, h: int, w: int, device: torch.device | str, dtype: torch.dtype,
            onesided: bool = False) -> torch.Tensor:
    """Transfer function of circular convolution with ``kernel`` (centre at (kh//2, kw//2)) on
    an h x w grid: (h, w) complex, or (h, w//2+1) with ``onesided`` (rfft). A kernel larger
    than the grid wraps around, as circular convolution does."""
    kh, kw = kernel.shape
    canvas = np.zeros((h, w))
    rows = (np.arange(kh) - kh // 2) % h
    cols = (np.arange(kw) - kw // 2) % w
    np.add.at(canvas, (rows[:, None], cols[None, :]), kernel)
    t = torch.as_tensor(canvas, dtype=dtype, device=device)
    return torch.fft.rfft2(t) if onesided else torch.fft.fft2(t)
