"""Real-ESRGAN's second-order degradation (Wang et al., ICCVW 2021, Sec. 3 and Fig. 2;
ranges of train_realesrgan_x4plus.yml). ``sample_realesrgan_chain`` draws a concrete chain
from a generator with every parameter recorded; ``RealESRGAN`` replays a recorded chain.

Choice on noise draws: the spec stores a ``seed``; ``forward`` seeds a CPU generator with it,
so replaying a spec reproduces the LQ image bit for bit (noise for image b of a batch is the
b-th draw). JPEG is real (Pillow), where the paper's training code uses DiffJPEG."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from operators.degradations.base import Degradation, Noise
from operators.degradations.jpeg import jpeg_roundtrip
from operators.degradations.realesrgan_kernels import (
    _choice,
    _u,
    blur_kernel,
    sample_blur_params,
)

MODES = ("area", "bilinear", "bicubic")


def _resize_step(g: torch.Generator, probs: list[float], rng: tuple[float, float], base: float) -> dict[str, Any]:
    """Up / down / keep with ``probs``; factor of the chain input's size = base * scale."""
    which = _choice(g, probs)
    s = _u(g, 1, rng[1]) if which == 0 else _u(g, rng[0], 1) if which == 1 else 1.0
    return {"op": "resize", "mode": MODES[_choice(g, [1, 1, 1])], "factor": base * s}


def _noise_step(g: torch.Generator, sigma: tuple[float, float], poisson: tuple[float, float]) -> dict[str, Any]:
    """Gaussian (p = 0.5, sigma in [1, 30]/255 or [1, 25]/255) else Poisson; grey with p = 0.4."""
    if _u(g, 0, 1) < 0.5:
        p = {"op": "noise", "kind": "gaussian", "sigma": _u(g, *sigma) / 255}
    else:
        p = {"op": "noise", "kind": "poisson", "scale": _u(g, *poisson)}
    p["gray"] = _u(g, 0, 1) < 0.4
    return p


def _jpeg_step(g: torch.Generator) -> dict[str, Any]:
    return {"op": "jpeg", "quality": int(torch.randint(30, 96, (), generator=g))}


def sample_realesrgan_chain(generator: torch.Generator, scale: int = 4) -> list[dict[str, Any]]:
    """The two-stage chain as a list of steps (blur / resize / noise / jpeg), all recorded."""
    g, steps = generator, []
    steps.append(sample_blur_params(g, (0.2, 3.0), sinc_prob=0.1))
    steps.append(_resize_step(g, [0.2, 0.7, 0.1], (0.15, 1.5), 1.0))
    steps.append(_noise_step(g, (1, 30), (0.05, 3.0)))
    steps.append(_jpeg_step(g))
    if _u(g, 0, 1) < 0.8:
        steps.append(sample_blur_params(g, (0.2, 1.5), sinc_prob=0.1))
    steps.append(_resize_step(g, [0.3, 0.4, 0.3], (0.3, 1.2), 1.0 / scale))
    steps.append(_noise_step(g, (1, 25), (0.05, 2.5)))
    final = [{"op": "resize", "mode": MODES[_choice(g, [1, 1, 1])], "factor": 1.0 / scale}]
    if _u(g, 0, 1) < 0.8:
        size = 2 * int(torch.randint(3, 11, (), generator=g)) + 1
        final.append({"op": "blur", "kind": "sinc", "size": size, "omega_c": _u(g, math.pi / 3, math.pi)})
    jpeg = _jpeg_step(g)
    steps += (final + [jpeg]) if _u(g, 0, 1) < 0.5 else ([jpeg] + final)
    return steps


@dataclass(frozen=True, eq=False)
class RealESRGAN(Degradation):
    """Replays ``chain`` on x: (B, 3, H, W) -> (B, 3, H // scale, W // scale). Unbound (no chain)
    until ``bind(shape, generator)`` / ``sample`` draws one."""

    name: ClassVar[str] = "realesrgan"
    linear: ClassVar[bool] = False
    scale: int = 4
    chain: tuple[dict[str, Any], ...] | None = None
    seed: int | None = None
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if self.chain is not None:
            object.__setattr__(self, "chain", tuple(dict(s) for s in self.chain))

    @classmethod
    def sample(cls, generator: torch.Generator, scale: int = 4, **p: Any) -> "RealESRGAN":
        return cls(scale=scale, **p).bind((), generator)

    def bind(self, shape: tuple[int, ...], generator: torch.Generator | None) -> "RealESRGAN":
        if self.chain is not None and self.seed is not None:
            return self
        if generator is None:
            raise ValueError("realesrgan: sampling a chain needs a torch.Generator")
        chain = self.chain if self.chain is not None else sample_realesrgan_chain(generator, self.scale)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (), generator=generator))
        return replace(self, chain=tuple(chain), seed=seed)

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale, "chain": None if self.chain is None else [dict(s) for s in self.chain],
                "seed": self.seed}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-2], shape[-2] // self.scale, shape[-1] // self.scale)

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-2], shape[-2] * self.scale, shape[-1] * self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chain is None or self.seed is None:
            raise ValueError("realesrgan: no chain yet; call bind(shape, generator) or sample_degradation")
        g = torch.Generator().manual_seed(int(self.seed))
        h, w = x.shape[-2:]
        out = x
        for step in self.chain:
            out = _apply(step, out, (h, w), g)
        return (out * 255).round().clamp(0, 255) / 255


def _apply(step: dict[str, Any], x: torch.Tensor, hw: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    op = step["op"]
    if op == "blur":
        k = torch.as_tensor(blur_kernel(step, pad_to=0), dtype=x.dtype, device=x.device)
        p = k.shape[-1] // 2
        mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
        xp = F.pad(x, (p, p, p, p), mode=mode)
        return F.conv2d(xp, k.expand(x.shape[1], 1, *k.shape), groups=x.shape[1])
    if op == "resize":
        size = (max(1, int(hw[0] * step["factor"])), max(1, int(hw[1] * step["factor"])))
        kw = {} if step["mode"] == "area" else {"align_corners": False}
        return F.interpolate(x, size=size, mode=step["mode"], **kw)
    if op == "noise":
        return (x + _noise(step, x, g)).clamp(0, 1)
    if op == "jpeg":
        return jpeg_roundtrip(x.clamp(0, 1), step["quality"])
    raise ValueError(f"realesrgan: unknown step {op!r}")


def _noise(step: dict[str, Any], x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Gaussian (sigma) or Poisson (scale) noise, colour or grey (one draw on all channels), as
    basicsr's random_add_{gaussian,poisson}_noise_pt; drawn on the CPU for device independence."""
    b, c, h, w = x.shape
    gray = bool(step["gray"])
    if step["kind"] == "gaussian":
        n = torch.randn(b, 1 if gray else c, h, w, generator=g, dtype=torch.float64) * step["sigma"]
        return n.expand(b, c, h, w).to(device=x.device, dtype=x.dtype)
    img = x.detach().double().cpu()
    if gray:
        img = (img * torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True) \
            if c == 3 else img[:, :1]
    img = (img * 255).round().clamp(0, 255) / 255
    out = torch.empty_like(img)
    for i in range(b):
        vals = 2 ** math.ceil(math.log2(max(len(torch.unique(img[i])), 2)))
        out[i] = torch.poisson(img[i] * vals, generator=g) / vals
    return ((out - img) * step["scale"]).expand(b, c, h, w).to(device=x.device, dtype=x.dtype)
