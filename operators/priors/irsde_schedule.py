"""The mean-reverting SDE of IR-SDE (Luo et al., "Image Restoration with Mean-Reverting
Stochastic Differential Equations", ICML 2023): dx = theta_t (mu - x) dt + sigma_t dw.

x(0) = HQ, mu = LQ upsampled to the HQ size, sigma_t^2 = 2 lambda^2 theta_t (Eq. 3), so
x(t) ~ N(mu + (x0 - mu) e^{-thetabar_t dt}, lambda^2 (1 - e^{-2 thetabar_t dt})) (Eq. 4-6).
Discretisation as the official code (codes/utils/sde_utils.py ``IRSDE``): steps t = 0..T,
theta_t = the code's cosine "betas" ``1 - alphabar`` on a grid of T + 2 steps (s = 0.008) —
1 - alphabar, not the DDPM betas 1 - alphabar_t / alphabar_{t-1}; thetabar_t = sum_{i=1..t}
theta_i (thetabar_0 = 0); dt such that e^{-thetabar_T dt} = ``decay_end`` (0.005).
The coefficients are computed in float64 and cast to the image dtype at the end; ``t`` and
``s`` are ints or (B,) integer tensors (one step per batch item).
"""
from __future__ import annotations

import math

import torch

Steps = int | torch.Tensor


class IRSDESchedule:
    """theta_t, thetabar_t (float64, shape (T + 1,)), dt; marginal, bridge posterior and the
    reverse Euler-Maruyama step. Images (B, C, H, W), any float dtype."""

    def __init__(self, T: int = 100, lam: float = 30 / 255, decay_end: float = 0.005, cosine_s: float = 0.008):
        if T < 1 or not 0 < lam < 1 or not 0 < decay_end < 1:
            raise ValueError(f"need T >= 1, 0 < lam < 1, 0 < decay_end < 1; "
                             f"got T={T}, lam={lam}, decay_end={decay_end}")
        self.T, self.lam = int(T), float(lam)
        n = T + 2
        grid = torch.linspace(0, n, n + 1, dtype=torch.float64)
        alphabar = torch.cos((grid / n + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        self.thetas = 1 - (alphabar / alphabar[0])[1:-1]  # (T + 1,), theta_0 unused
        self.thetabar = torch.cumsum(self.thetas, 0) - self.thetas[0]
        self.dt = -math.log(decay_end) / float(self.thetabar[-1])

    # -- per-step coefficients (float64, shape (B, 1, 1, 1) or scalar) -----------------------
    def _at(self, values: torch.Tensor, t: Steps) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.long, device=values.device)
        if bool((t < 0).any()) or bool((t > self.T).any()):
            raise ValueError(f"steps must be in 0..{self.T}, got {t.tolist()}")
        v = values[t]
        return v.reshape(-1, 1, 1, 1) if v.ndim else v

    def decay(self, t: Steps) -> torch.Tensor:
        """e^{-thetabar_t dt}: the weight of x0 - mu left at step t."""
        return torch.exp(-self._at(self.thetabar, t) * self.dt)

    def sigma_bar(self, t: Steps) -> torch.Tensor:
        """The marginal std lambda sqrt(1 - e^{-2 thetabar_t dt}) (Eq. 6)."""
        return self.lam * torch.sqrt(1 - self.decay(t) ** 2)

    def sigma2(self, t: Steps) -> torch.Tensor:
        """sigma_t^2 = 2 lambda^2 theta_t."""
        return 2 * self.lam**2 * self._at(self.thetas, t)

    # -- forward marginal ----------------------------------------------------------------------
    def marginal(self, x0: torch.Tensor, mu: torch.Tensor, t: Steps) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of x_t given x0: mu + (x0 - mu) e^{-thetabar_t dt} and sigma_bar(t)."""
        return mu + _cast(self.decay(t), x0) * (x0 - mu), _cast(self.sigma_bar(t), x0)

    # -- Gaussian bridge q(x_s | x_t, x0), s < t ------------------------------------------------
    def _bridge(self, t: Steps, s: Steps) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, c, var): mean = mu + a (x_t - mu) + c (x0 - mu), variance var (all float64).
        A = e^{-(thetabar_t - thetabar_s) dt}, B = e^{-thetabar_t dt}, C = e^{-thetabar_s dt}."""
        if bool((torch.as_tensor(s).cpu() >= torch.as_tensor(t).cpu()).any()):
            raise ValueError(f"the bridge needs s < t, got t={t}, s={s}")
        B, C = self.decay(t), self.decay(s)
        A = B / C
        a = A * (1 - C**2) / (1 - B**2)
        c = C * (1 - A**2) / (1 - B**2)
        return a, c, self.lam**2 * (1 - A**2) * (1 - C**2) / (1 - B**2)

    def optimal_prev(self, x_t: torch.Tensor, x0: torch.Tensor, mu: torch.Tensor, t: Steps,
                     s: Steps | None = None) -> torch.Tensor:
        """x*_{t-1} of the maximum-likelihood loss (Luo et al. Eq. 12-13; s = t - 1 by default):
        mu + A(1 - C^2)/(1 - B^2) (x_t - mu) + C(1 - A^2)/(1 - B^2) (x0 - mu)."""
        a, c, _ = self._bridge(t, t - 1 if s is None else s)
        return mu + _cast(a, x_t) * (x_t - mu) + _cast(c, x_t) * (x0 - mu)

    def x0_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, mu: torch.Tensor, t: Steps) -> torch.Tensor:
        """x0 implied by eps = (x_t - mean_t) / sigma_bar_t: mu + (x_t - mu - sigma_bar eps) / B."""
        return mu + (x_t - mu - _cast(self.sigma_bar(t), x_t) * eps) / _cast(self.decay(t), x_t)

    def posterior_step(self, x_t: torch.Tensor, eps: torch.Tensor, mu: torch.Tensor, t: Steps, s: Steps,
                       z: torch.Tensor) -> torch.Tensor:
        """x_s ~ q(x_s | x_t, x0_hat): the bridge with x0 estimated from eps (exact for exact eps)."""
        a, c, var = self._bridge(t, s)
        x0_hat = self.x0_from_eps(x_t, eps, mu, t)
        return mu + _cast(a, x_t) * (x_t - mu) + _cast(c, x_t) * (x0_hat - mu) + _cast(var.sqrt(), x_t) * z

    # -- reverse-time SDE (Anderson 1982; Luo et al. Eq. 7, 10) -------------------------------
    def reverse_mean(self, x_t: torch.Tensor, eps: torch.Tensor, mu: torch.Tensor, t: Steps,
                     s: Steps | None = None) -> torch.Tensor:
        """x_t - [Theta (mu - x_t) - Sigma2 score] dt with score = -eps / sigma_bar_t, where
        Theta = thetabar_t - thetabar_s and Sigma2 = 2 lambda^2 Theta (s = t - 1: theta_t, sigma_t^2)."""
        s = t - 1 if s is None else s
        theta = self._at(self.thetabar, t) - self._at(self.thetabar, s)
        score = -eps / _cast(self.sigma_bar(t), x_t)
        drift = _cast(theta * self.dt, x_t) * (mu - x_t) - _cast(2 * self.lam**2 * theta * self.dt, x_t) * score
        return x_t - drift

    def reverse_step(self, x_t: torch.Tensor, eps: torch.Tensor, mu: torch.Tensor, t: Steps, s: Steps,
                     z: torch.Tensor) -> torch.Tensor:
        """One reverse Euler-Maruyama step from t to s < t: reverse_mean - sqrt(Sigma2 dt) z."""
        theta = self._at(self.thetabar, t) - self._at(self.thetabar, s)
        return self.reverse_mean(x_t, eps, mu, t, s) - _cast(torch.sqrt(2 * self.lam**2 * theta * self.dt), x_t) * z

    def grid(self, n: int) -> list[int]:
        """n + 1 steps from T down to 0, as evenly spaced as integers allow (n = T: every step)."""
        if not 1 <= n <= self.T:
            raise ValueError(f"need 1 <= steps <= T = {self.T}, got {n}")
        return [round(self.T * (n - k) / n) for k in range(n + 1)]


def _cast(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return coef.to(dtype=like.dtype, device=like.device)
