"""Config-time checks of registry names and keys (solver, prior, degradation).

Each turns the operators' own errors into one ConfigError that names the config key.
"""
from __future__ import annotations

from pipelines.config import ConfigError


def _name(spec: dict, key: str, valid: list[str]) -> str:
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"config key '{key}' needs a 'name'; valid choices: {', '.join(valid)}")
    if spec["name"] not in valid:
        raise ConfigError(f"config key '{key}.name': unknown {key.split('.')[-1]} {spec['name']!r}; "
                          f"valid choices: {', '.join(valid)}")
    return spec["name"]


def check_degradation(spec: dict, key: str = "degradation") -> None:
    from operators.degradations import DEGRADATIONS, build_degradation

    _name(spec, key, DEGRADATIONS.names())
    check_noise(spec, key)
    try:
        build_degradation(dict(spec))
    except (ValueError, TypeError, KeyError, FileNotFoundError) as e:
        raise ConfigError(f"config key '{key}': {e}") from None


def check_noise(spec, key: str) -> None:
    """Noise keys anywhere in a spec (a compose's ``ops`` included) in range: ``noise_sigma``
    in [0, 1] (image units: 25/255, not 25), ``noise_poisson_peak`` a finite number > 0."""
    import math

    if isinstance(spec, list):
        for i, s in enumerate(spec):
            check_noise(s, f"{key}[{i}]")
        return
    if not isinstance(spec, dict):
        return
    for k, v in spec.items():
        if k == "noise_sigma" and v is not None and not (_number(v) and 0 <= v <= 1):
            raise ConfigError(f"config key '{key}.{k}': must be in [0, 1] (image units, e.g. 25/255 = "
                              f"0.098), got {v!r}")
        if k == "noise_poisson_peak" and v is not None and not (_number(v) and 0 < v < math.inf):
            raise ConfigError(f"config key '{key}.{k}': must be a finite number > 0, got {v!r}")
        if isinstance(v, (dict, list)):
            check_noise(v, f"{key}.{k}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_concrete(spec: dict, key: str = "degradation") -> None:
    """The degradation must need no random draw to bind (a given mask / kernel / chain): an LQ
    file was made by one fixed operator, which restoring cannot invent."""
    from operators.degradations import build_degradation

    try:
        build_degradation(dict(spec)).bind((1, 3, 64, 64), None)
    except ValueError as e:
        raise ConfigError(f"config key '{key}': with synthesize: false the degradation must be concrete "
                          f"(give the mask / kernel / chain that made the LQ input); binding it {e}") from None


def check_blind(degradation: dict, solver: dict, synthesize: bool) -> None:
    """``blind`` has no forward map: it cannot synthesize, and only the blind solvers restore it."""
    from operators.solvers import BLIND_SOLVERS

    if degradation.get("name") != "blind":
        return
    if synthesize:
        raise ConfigError("config key 'degradation': 'blind' has no forward map, so synthesize: true cannot "
                          "degrade with it; synthesize with {name: realesrgan, scale: 4} (the blind solvers never "
                          "see its sampled chain), or restore real LQ photos with synthesize: false")
    if solver.get("name") not in BLIND_SOLVERS:
        raise ConfigError(f"config key 'solver.name': degradation 'blind' (unknown operator) needs a blind solver: "
                          f"{', '.join(BLIND_SOLVERS)}; {solver.get('name')!r} needs the operator")


def check_solver(spec: dict, key: str = "solver") -> None:
    """name, nfe, the posterior keys (samples, estimate: operators.solvers.posterior), preset
    (operators.solvers.presets), init (a learned initial estimator: operators.estimators; its
    weights are loaded, so a bad path fails here) and the rest as the solver's config dataclass."""
    from operators.estimators import KEY as INIT, build_estimator
    from operators.solvers import SOLVERS, row_config, with_run_defaults
    from operators.solvers.posterior import KEYS, PosteriorConfig, check_posterior

    name = _name(spec, key, SOLVERS.names())
    rest = {k: v for k, v in spec.items() if k not in ("name", "nfe", INIT, *KEYS)}
    try:
        build_estimator(spec.get(INIT))
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"config key '{key}.{INIT}': {e}") from None
    spec = with_run_defaults(spec)
    nfe = spec["nfe"]
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ConfigError(f"config key '{key}.nfe': expected a positive integer, got {nfe!r}")
    posterior = {k: spec[k] for k in KEYS if k in spec}
    for k, v in posterior.items():
        try:
            PosteriorConfig(**{k: v})
        except ValueError as e:
            raise ConfigError(f"config key '{key}.{k}': {e}") from None
    try:
        check_posterior(name, PosteriorConfig(**posterior))
    except ValueError as e:
        raise ConfigError(f"config key '{key}.samples': {e}") from None
    try:
        row_config(name, rest, None)  # preset name, keys and values; the preset itself per row
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"config key '{key}': {e}") from None


def check_prior(spec: dict, key: str = "prior") -> None:
    from operators.priors import PRIORS, prior_keys

    name = _name(spec, key, PRIORS.names())
    valid = prior_keys(name)
    unknown = sorted(set(spec) - {"name", *valid})
    if unknown:
        raise ConfigError(f"unknown config key '{key}.{unknown[0]}' for prior {name!r}; "
                          f"valid keys: name, {', '.join(valid)}")
    if name in ("embedded", "embedded_latent") and "dtype" in spec:
        from operators.priors.precision import compute_dtype

        try:
            compute_dtype(spec["dtype"])
        except ValueError as e:
            raise ConfigError(f"config key '{key}.dtype': {e}") from None
