"""LatentINDIGO: blind restoration guided by a lifting-scheme INN (operators/priors/inn.py)."""
from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch

from operators.degradations.base import Degradation
from operators.degradations.blind import blind_view, upsample
from operators.priors.base import Prior
from operators.priors.inn import INN, INNConfig, fit, load
from operators.priors.paths import shipped_weights
from operators.solvers import common
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig, resolve_config
from operators.solvers.tiling import TiledPrior, tiled

# (inn, the denoiser's space) -> (shipped weights, the config that trains them). A LatentINN on a
# pixel-space denoiser (a pixel prior, or the conditional model) works on the image (E = identity).
DEFAULT_WEIGHTS = {("pixel", "pixel"): ("blind_pixel_inn", "train-inn"),
                   ("pixel", "latent"): ("blind_pixel_inn", "train-inn"),
                   ("latent", "latent"): ("blind_latent_inn", "train-latent-inn"),
                   ("latent", "pixel"): ("blind_latent_inn_image", "train-latent-inn-image")}
INNS = ("pixel", "latent")
UNTRAINED = "untrained"


def train_command(inn: str, space: str) -> str:
    """The command that trains the default INN for ``inn`` guidance on a ``space`` denoiser."""
    return f"restoray run configs/{DEFAULT_WEIGHTS[inn, space][1]}.yaml"


@dataclass(frozen=True)
class IndigoConfig(SolverConfig):
    """``inn``: PixelINN guidance (Alg. 1) or LatentINN guidance (Alg. 2). ``weights``: None ->
    the shipped INN for ``inn`` and the denoiser's space (:data:`DEFAULT_WEIGHTS`:
    weights/blind_pixel_inn, blind_latent_inn on a latent prior, blind_latent_inn_image on a pixel
    one, the conditional model included); a name or path; or ``untrained`` (zero predict / update
    nets: the plain Haar transform. PixelINN: c = block mean, an ILVR-like low-pass guidance;
    LatentINN: c is a local mean but E(upsample y) is not, so it adds high frequencies twice and
    hurts (measured 14.3 dB vs 18.5 unguided): for tests, not restoration).
    ``sigma_start``: noise level the upsampled LQ latent starts at (the prior's units; None:
    4.0 with the conditional model, its few-step sampler's start, 0.4 with a prior);
    ``sigma_min``, ``rho``: the rest of the Karras schedule; ``zeta``: fresh-noise share of the
    renoising (None: DDPM ancestral). PixelINN: ``step`` on the latent for the loss
    ``w_y s^2 ||y - c||^2 + w_p ||x_inv - x||^2``. LatentINN: ``eta``. ``reencode``: fraction of
    the steps with z0 <- E(Dec(z0)) (latent priors; 15 of 50 in the paper); ``refine_steps``
    Adam steps (``refine_lr``) on a per-image copy of the INN in the first half. ``tile`` > 0:
    D on ``tile`` x ``tile`` latent tiles, ``tile_overlap`` apart at least, Gaussian-weighted
    (Alg. 3); 0: the usual whole-latent call (``tile_max_pixels`` tiling).
    ``denoiser``: ``prior``, the job's prior (unconditional: it sees the LQ only through the start
    and the guidance); ``conditional`` (default), the conditional direct-diffusion model of
    ``conditional_weights`` (None: the shipped one) bound to the upsampled LQ, the role DiffBIR's
    ControlNet-conditioned model has in the paper (pixel space; the job's prior is unused).
    Defaults: the conditional model at 2 NFE (``RUN_DEFAULTS``), the best PSNR measured on
    Real-ESRGAN x4 CBSD68 crops (19.82 dB with either INN, bicubic 19.62; 4 / 8 / 20 NFE 19.52 /
    19.23 / 18.83; PixelINN guidance on the embedded pixel prior 19.28-19.35 at 0.4)."""

    RUN_DEFAULTS: ClassVar[dict[str, int]] = {"nfe": 2}
    SIGMA_START: ClassVar[dict[str, float]] = {"conditional": 4.0, "prior": 0.4}

    inn: Literal["pixel", "latent"] = "pixel"
    weights: str | None = None
    denoiser: Literal["prior", "conditional"] = "conditional"
    conditional_weights: str | None = None
    sigma_start: float | None = None
    sigma_min: float | None = None
    rho: float = 7.0
    zeta: float | None = None
    step: float = 0.2
    w_y: float = 1.0
    w_p: float = 1.0
    eta: float = 0.3
    reencode: float = 0.3
    refine_steps: int = 2
    refine_lr: float = 1e-4
    tile: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.denoiser not in ("prior", "conditional"):
            raise ValueError(f"denoiser must be 'prior' or 'conditional', got {self.denoiser!r}")
        if self.inn not in INNS:
            raise ValueError(f"inn must be 'pixel' or 'latent', got {self.inn!r}")
        bad_start = self.sigma_start is not None and self.sigma_start <= 0
        if bad_start or min(self.step, self.w_y, self.w_p, self.refine_steps) < 0 or self.refine_lr <= 0:
            raise ValueError("need sigma_start, refine_lr > 0 and step, w_y, w_p, refine_steps >= 0")
        if not (0 <= self.eta <= 1 and 0 <= self.reencode <= 1 and (self.zeta is None or 0 <= self.zeta <= 1)):
            raise ValueError(f"eta, reencode and zeta must lie in [0, 1], got {self.eta}, {self.reencode}, {self.zeta}")
        if self.tile < 0 or (self.tile and 2 * self.tile_overlap > self.tile):
            raise ValueError(f"need tile = 0 or tile >= 2 * tile_overlap, got tile={self.tile}, "
                             f"tile_overlap={self.tile_overlap}")


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int, device: str) -> INN:
    return load(path, device).requires_grad_(False)


def inn_model(cfg: IndigoConfig, prior: Prior, scale: int, channels: int, device: torch.device) -> INN:
    """The INN ``cfg`` names, checked against the task: a PixelINN of the blind ``scale`` on
    ``channels``-channel images, or a LatentINN on the prior's latent channels."""
    split = "haar" if cfg.inn == "pixel" else "undecimated"
    if cfg.weights == UNTRAINED:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            levels = round(math.log2(scale)) if cfg.inn == "pixel" else 2
            model = INN(INNConfig(channels=channels if cfg.inn == "pixel" else prior.channels, levels=levels,
                                  split=split)).to(device).requires_grad_(False)
    else:
        path = shipped_weights(cfg.weights or DEFAULT_WEIGHTS[cfg.inn, prior.space][0])
        if not path.is_file():
            raise FileNotFoundError(f"solver 'indigo': {cfg.inn} INN weights not found: {path}; train them with "
                                    f"`{train_command(cfg.inn, prior.space)}`, or set weights: <.safetensors> "
                                    "(or 'untrained')")
        st = Path(path).stat()
        model = _load(str(Path(path).resolve()), st.st_mtime_ns, st.st_size, str(device))
    c = model.config
    if c.split != split:
        raise ValueError(f"solver 'indigo': inn={cfg.inn!r} needs a {split!r} INN, the weights are {c.split!r}")
    if cfg.inn == "pixel" and (c.scale != scale or c.channels != channels):
        raise ValueError(f"solver 'indigo': the PixelINN is x{c.scale} on {c.channels} channels, the task is "
                         f"x{scale} on {channels}; use a PixelINN trained for it (or inn: latent)")
    if cfg.inn == "latent" and c.channels != prior.channels:
        raise ValueError(f"solver 'indigo': the LatentINN has {c.channels} channels, prior {prior.name!r} has "
                         f"{prior.channels} ({prior.space} space); train it on this prior's latents "
                         "(pixel images for a pixel prior)")
    return model


def refiner(inn: INN, lr: float) -> tuple[INN, torch.optim.Optimizer | None]:
    """A trainable copy of ``inn`` (the shipped model stays untouched) and an Adam on its lifting
    steps (None for a 0-level INN: nothing to refine)."""
    model = copy.deepcopy(inn).requires_grad_(True)
    params = list(model.levels.parameters())
    return model, torch.optim.Adam(params, lr=lr) if params else None


def refine(model: INN, opt: torch.optim.Optimizer | None, v: torch.Tensor, target: torch.Tensor,
           e: torch.Tensor, steps: int) -> None:
    """INN refinement (Eq. 16, Alg. 1 line 11): Adam steps on mean |g(v).c - target|, with the
    degradation embedding e held fixed."""
    if opt is None:
        return
    v = v.detach()
    for _ in range(steps):
        with torch.enable_grad():
            c = model(v, e=e).c
            loss = (fit(c, target) - target).abs().mean()
            opt.zero_grad()
            loss.backward()
        opt.step()


def pixel_guidance(inn: INN, prior: Prior, z0: torch.Tensor, y: torch.Tensor, e: torch.Tensor,
                   size: tuple[int, int], cfg: IndigoConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Alg. 1 lines 5-8: x = Dec(z0), (c, d) = g(x), x_inv = g^-1(y, d);
    z0 <- z0 - t grad_z0 [w_y s^2 ||y - c||^2 + w_p ||x_inv - x||^2] (y's term counted per HQ
    pixel, s^2 of them per LQ pixel, so both terms have the same units; x_inv is the target, no
    gradient through it). The paper's second term is an LPIPS distance; no LPIPS backbone ships
    with restoray, so it is this plain L2 distance. t starts at ``step`` and is quartered until
    the loss does not rise (at most 8 times; else no move): a trained INN's coarse map can be
    steep (a fixed step of 0.2 diverged with the shipped PixelINN, 0.002 did not). Returns
    (z0, ||y - c|| per image before the step)."""
    def loss_of(z: torch.Tensor, x_inv: torch.Tensor | None = None):
        x = common.decode(prior, z, size)
        c, d = inn(x, e=e)
        if x_inv is None:
            x_inv = inn.inverse(fit(y, c), d, e=e, size=size).detach()
        r = fit(c, y) - y
        return cfg.w_y * inn.config.scale**2 * r.pow(2).sum() + cfg.w_p * (x_inv - x).pow(2).sum(), r, x_inv

    with torch.enable_grad():
        z0 = z0.detach().requires_grad_(True)
        loss, r, x_inv = loss_of(z0)
        (grad,) = torch.autograd.grad(loss, z0)
    t, z0 = cfg.step, z0.detach()
    with torch.no_grad():
        for _ in range(8):
            moved = z0 - t * grad
            new_loss, _, _ = loss_of(moved, x_inv)
            if float(new_loss) <= float(loss):
                return moved, r.detach().flatten(1).norm(dim=1)
            t /= 4
    return z0, r.detach().flatten(1).norm(dim=1)


def latent_guidance(inn: INN, z0: torch.Tensor, z_mu: torch.Tensor, e: torch.Tensor,
                    eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Alg. 2, no backprop: z_inv = g^-1(E(upsample y), g(z0).d); z0 + eta (z_inv - z0).
    Returns (z0, ||E(upsample y) - c|| per image)."""
    c, d = inn(z0, e=e)
    z_inv = inn.inverse(z_mu, d, e=e)
    return z0 + eta * (z_inv - z0), (c - z_mu).flatten(1).norm(dim=1)


def conditioned(cfg: IndigoConfig, y: torch.Tensor, scale: int, size: tuple[int, int]) -> Prior:
    """The conditional model of ``cfg.conditional_weights`` bound to mu = upsample(y) (its D
    calls tiled as ``prepare`` would tile the prior's)."""
    from operators.priors.conditional import BoundConditionalPrior, ConditionalPrior
    from operators.solvers.conditional import conditional_model

    net = conditional_model(cfg.conditional_weights, scale).to(y.device)
    if net.conditional.scale != scale:
        raise ValueError(f"solver 'indigo': the conditional model restores x{net.conditional.scale}, the task is x{scale}")
    return BoundConditionalPrior(prepare(ConditionalPrior(net), cfg), upsample(y, size))


def prepare(prior: Prior, cfg: IndigoConfig) -> TiledPrior:
    """Alg. 3 with ``tile`` > 0: every D call on Gaussian-weighted tiles; else the usual wrapper."""
    if cfg.tile == 0:
        return common.prepare_prior(prior, cfg)
    wrapped = tiled(prior, 0, cfg.tile, cfg.tile_overlap, cfg.tile_batch, window="gaussian")
    wrapped.nfe.reset()
    return wrapped


def solve_indigo(y: torch.Tensor, degradation: Degradation, prior: Prior, *, nfe: int,
                 generator: torch.Generator | None, config: IndigoConfig | dict | None = None,
                 callback: common.Callback | None = None) -> SolverOutput:
    """LatentINDIGO (You, Siromani, Dragotti, arXiv 2505.12935, Algs. 1-3) in EDM form around any
    prior's denoiser (pixel priors: E = Dec = identity); blind: only the scale of ``degradation``
    is read. One NFE per step, no backward pass through D.

    y: (B, C, h, w) -> x: (B, C, s h, s w). z = E(upsample(y)) + sigma_start eps (SDEdit-style:
    restoray has no ControlNet-conditioned prior as DiffBIR's), then per step z0 = D(z, sigma_i),
    INN guidance on z0 (PixelINN: :func:`pixel_guidance`; LatentINN: :func:`latent_guidance`),
    z0 <- E(Dec(z0)) in the first ``reencode`` of the steps, :func:`refine` in the first half,
    and z = z0 + sigma_{i+1} (DDIM eps / fresh noise). Returns Dec(z) at sigma = 0."""
    cfg = resolve_config(config, IndigoConfig, "indigo")
    nfe = common.check_nfe(nfe, "indigo")
    view = blind_view(degradation)
    size = tuple(view.input_shape(tuple(y.shape))[-2:])
    if cfg.denoiser == "conditional":
        prior = conditioned(cfg, y, view.scale, size)
    inn = inn_model(cfg, prior, view.scale, y.shape[1], y.device)
    prior = prepare(prior, cfg) if cfg.denoiser == "prior" else prior
    start = cfg.SIGMA_START[cfg.denoiser] if cfg.sigma_start is None else cfg.sigma_start
    sigmas = common.sigma_schedule(prior, nfe, cfg.sigma_min, start, cfg.rho)
    with torch.no_grad():
        z_mu = common.encode(prior, upsample(y, size))
        e = inn.embed(y)
        z = z_mu + float(sigmas[0]) * common.randn_like(z_mu, generator)
    rows = [slice(b, b + 1) for b in range(y.shape[0])] if cfg.refine_steps else [slice(None)]
    models = [refiner(inn, cfg.refine_lr) if cfg.refine_steps else (inn, None) for _ in rows]
    for i in range(nfe):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        with torch.no_grad():
            den = prior.denoise(z, sigma, cfg.prompt)
            guided = [pixel_guidance(model, prior, den[row], y[row], e[row], size, cfg) if cfg.inn == "pixel"
                      else latent_guidance(model, den[row], z_mu[row], e[row], cfg.eta)
                      for row, (model, _) in zip(rows, models)]
            z0, residual = torch.cat([g for g, _ in guided]), torch.cat([r for _, r in guided]).tolist()
            if prior.space == "latent" and i < cfg.reencode * nfe:
                z0 = common.encode(prior, common.decode(prior, z0, size))
            if cfg.refine_steps and i < nfe / 2:
                v = common.decode(prior, z0, size) if cfg.inn == "pixel" else z0
                target = y if cfg.inn == "pixel" else z_mu
                for row, (model, opt) in zip(rows, models):
                    refine(model, opt, v[row], target[row], e[row], cfg.refine_steps)
            zeta = common.ancestral_zeta(sigma, sigma_next) if cfg.zeta is None else cfg.zeta
            z = common.renoise(z0, (z - den) / sigma, sigma_next, zeta, generator)
            common.emit(callback, step=i, sigma=sigma, x=z, denoised=z0, residual=residual)
    with torch.no_grad():
        x = common.decode(prior, z, size)
    return common.finish(x, prior, residual=residual)
