"""Real-ESRGAN's blur kernels (Wang et al., ICCVW 2021, Sec. 3.1): isotropic / anisotropic
Gaussian, generalized Gaussian, plateau, and the 2-D sinc (ideal low-pass) kernel; each built
deterministically from recorded parameters, and sampled by ``sample_blur_params``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import j1

KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T Sigma^-1 x on a size x size grid centred at 0, Sigma rotated by theta (radians)."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T)
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)
    g = np.stack([xx, yy], -1).astype(np.float64)
    return np.einsum("...i,ij,...j->...", g, inv, g)


def blur_kernel(p: dict[str, Any], pad_to: int = 21) -> np.ndarray:
    """The normalized kernel of a recorded blur step, zero-padded to pad_to x pad_to.

    gaussian: exp(-q/2); generalized: exp(-(q)^beta / 2); plateau: 1 / (1 + q^beta), q the
    quadratic form (Eqs. 2-3 of the paper's supplement; basicsr ``degradations.py``)."""
    kind, size = p["kind"], int(p["size"])
    if kind == "sinc":
        k = sinc_kernel(size, p["omega_c"])
    else:
        q = _quadratic_form(size, p["sigma_x"], p["sigma_y"], p["theta"])
        if kind.startswith("generalized"):
            k = np.exp(-0.5 * q ** p["beta"])
        elif kind.startswith("plateau"):
            k = 1.0 / (1.0 + q ** p["beta"])
        else:
            k = np.exp(-0.5 * q)
        k = k / k.sum()
    pad = (pad_to - size) // 2
    return np.pad(k, pad) if pad > 0 else k


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """2-D circular low-pass of cutoff omega_c: omega_c J1(omega_c r) / (2 pi r), normalized."""
    r = np.arange(size) - size // 2
    rr = np.hypot(*np.meshgrid(r, r))
    with np.errstate(invalid="ignore", divide="ignore"):
        k = omega_c * j1(omega_c * rr) / (2 * math.pi * rr)
    k[rr == 0] = omega_c**2 / (4 * math.pi)
    return k / k.sum()


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _choice(g: torch.Generator, probs: list[float]) -> int:
    return int(torch.multinomial(torch.tensor(probs, dtype=torch.float64), 1, generator=g))


def sample_blur_params(g: torch.Generator, sigma_range: tuple[float, float], sinc_prob: float = 0.1,
                       betag_range: tuple[float, float] = (0.5, 4.0), betap_range: tuple[float, float] = (1.0, 2.0),
                       probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)) -> dict[str, Any]:
    """One random blur step of the chain: size odd in [7, 21]; sinc with ``sinc_prob`` (cutoff
    in [pi/3, pi] below size 13, else [pi/5, pi]); else one of KINDS with ``probs``."""
    size = 2 * int(torch.randint(3, 11, (), generator=g)) + 1
    if _u(g, 0, 1) < sinc_prob:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return {"op": "blur", "kind": "sinc", "size": size, "omega_c": _u(g, lo, math.pi)}
    kind = KINDS[_choice(g, list(probs))]
    sx = _u(g, *sigma_range)
    if kind.endswith("aniso"):
        sy, theta = _u(g, *sigma_range), _u(g, -math.pi, math.pi)
    else:
        sy, theta = sx, 0.0
    p = {"op": "blur", "kind": kind, "size": size, "sigma_x": sx, "sigma_y": sy, "theta": theta}
    if kind.startswith("generalized"):
        p["beta"] = _u(g, betag_range[0], 1) if _u(g, 0, 1) < 0.5 else _u(g, 1, betag_range[1])
    elif kind.startswith("plateau"):
        p["beta"] = _u(g, betap_range[0], 1) if _u(g, 0, 1) < 0.5 else _u(g, 1, betap_range[1])
    return p
