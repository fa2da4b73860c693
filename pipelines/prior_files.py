"""The local files a prior spec reads: checked at config time, and hashed into resume ids.

``prior_files`` resolves them the way the operators' loaders do (operators/priors/*.py);
``check_prior_files`` turns a missing one, or one whose header is not what its loader reads,
into a ConfigError naming it and how to get it;
``prior_digest`` is the sha256 (first 16 hex) of each weights file of an embedded prior,
``solver_digest`` the same for the files a solver spec reads besides its prior (a trained
UD2M unfolding, the blind solvers' networks).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipelines.config import ConfigError
from pipelines.weights_header import weights_problem

_DIGESTS: dict[tuple[str, int, int], str] = {}
HOW = {
    "embedded": "train them with `restoray run configs/train-prior.yaml` (writes weights/<name>.safetensors) "
                "or set weights=<path to a .safetensors file>",
    "dncnn": "set weights=<path to dncnn_25.pth> (KAIR model zoo, grey, sigma 25) or <path to "
             "GD_Color_Blind.mat> (cszn/DnCNN, colour, blind)",
    "ffdnet": "set weights=<path to FFDNet_color.mat or FFDNet_gray.mat> (cszn/FFDNet models/)",
    "diffusers": "give an existing folder in diffusers' save_pretrained layout, or a hub id (org/name)",
    "prompt_embeds": "give a .safetensors file holding a tensor 'prompt_embeds' (1, L, D)",
}


def _is_local_path(model: str) -> bool:
    """A diffusers ``model`` names a local folder when it starts like a path or exists;
    ``org/name`` is a hub id."""
    return model.startswith(("/", "./", "../", "~", "file://")) or os.path.exists(model)


def prior_files(spec: dict) -> list[tuple[Path, str]]:
    """[(path, kind)] a prior spec loads from disk, missing ones included; kind keys ``HOW``."""
    from operators.priors.paths import shared_weights, shipped_weights

    name = spec.get("name")
    if name == "embedded":
        from operators.priors.embedded import DEFAULT_GREY_WEIGHTS, DEFAULT_WEIGHTS

        default = DEFAULT_GREY_WEIGHTS if spec.get("grey") else DEFAULT_WEIGHTS
        return [(shipped_weights(spec.get("weights") or default), "embedded")]
    if name == "embedded_latent":
        from operators.priors.edm_unet import read_metadata
        from operators.priors.embedded_latent import (
            DEFAULT_WEIGHTS,
            latent_config_from_metadata,
        )

        unet = shipped_weights(spec.get("weights") or DEFAULT_WEIGHTS)
        files = [(unet, "embedded")]
        codec = spec.get("codec_weights")
        if codec is None and unet.is_file() and weights_problem(unet, "embedded") is None:
            try:
                codec = latent_config_from_metadata(read_metadata(unet), unet).codec
            except ValueError:
                codec = None  # not a latent prior file: the loader says so
        return files + ([(shipped_weights(codec), "embedded")] if codec else [])
    files = []
    if name in ("dncnn", "ffdnet"):
        from operators.priors.dncnn import DEFAULT_WEIGHTS as DNCNN
        from operators.priors.ffdnet import DEFAULT_WEIGHTS as FFDNET

        default = DNCNN if name == "dncnn" else FFDNET
        files.append((Path(spec["weights"]) if spec.get("weights") else shared_weights(default), name))
    if name == "diffusers":
        model = str(spec.get("model") or "")
        if model and _is_local_path(model):
            files.append((Path(os.path.expanduser(model.removeprefix("file://"))), "diffusers"))
        if spec.get("prompt_embeds"):
            files.append((Path(spec["prompt_embeds"]), "prompt_embeds"))
    return files


def check_prior_files(spec: dict, key: str = "prior", require: bool = True) -> None:
    """ConfigError for the first file the prior would read that is not there (``require``) or
    whose header is not what its loader reads (pipelines.weights_header: /etc/passwd as
    weights fails here, not in a worker)."""
    for path, kind in prior_files(spec):
        if not path.exists():
            if not require:
                continue
            raise ConfigError(f"config key '{key}': prior {spec.get('name')!r} needs {path}, which does not "
                              f"exist; {HOW[kind]}")
        problem = weights_problem(path, kind)
        if problem:
            raise ConfigError(f"config key '{_spec_key(spec, path, key)}': {problem}; {HOW[kind]}")


def check_weights_file(path: str, key: str, kind: str = "embedded") -> None:
    """ConfigError naming ``key`` when the weights file at ``path`` is missing or not a ``kind`` file."""
    p = Path(os.path.expanduser(path))
    if not p.exists():
        raise ConfigError(f"config key '{key}': file not found: {path}")
    problem = weights_problem(p, kind)
    if problem:
        raise ConfigError(f"config key '{key}': {problem}")


def check_dvdnet_files(folder: str, key: str) -> None:
    """The folder of DVDnet's two torch files (operators.priors.dvdnet.FILES), headers checked."""
    from operators.priors.dvdnet import FILES

    for name in FILES:
        path = Path(os.path.expanduser(folder)) / name
        problem = f"{path} does not exist" if not path.is_file() else weights_problem(path, "dvdnet")
        if problem:
            raise ConfigError(f"config key '{key}': {problem}; give the folder holding {' and '.join(FILES)} "
                              f"(m-tassano/dvdnet, GPL-3.0-or-later)")


def _spec_key(spec: dict, path: Path, key: str) -> str:
    """``prior.weights`` (the spec key that named ``path``), else ``prior`` (a default file)."""
    for k, v in spec.items():
        if k != "name" and isinstance(v, str) and v and (Path(os.path.expanduser(v)) == path or path.stem == v
                                                          or str(path).endswith("/" + v.removeprefix("./"))):
            return f"{key}.{k}"
    return key


def file_digest(path: Path) -> str:
    """sha256 of a file, first 16 hex; cached per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def prior_digest(spec: dict) -> dict[str, str]:
    """{file name: digest} of the weights files of an embedded prior ({} for other priors, or
    files that are missing): changes when the weights are retrained."""
    if spec.get("name") not in ("embedded", "embedded_latent"):
        return {}
    return {p.name: file_digest(p) for p, _ in prior_files(spec) if p.is_file()}


def solver_files(spec: dict, prior: dict | None = None) -> dict[str, Path]:
    """{label: path} of the trained files a solver spec loads besides its prior, the shipped ones
    when it names none: ud2m's unfolding; the blind solvers' networks (conditional, irsde;
    indigo's INN and, with its default ``denoiser: conditional``, the conditional model). The
    INN of ``denoiser: prior`` depends on the prior's space, read from ``prior``'s name (latent
    for embedded_latent and diffusers models). Untrained ones are left out."""
    from operators.priors.paths import shipped_weights

    name, untrained = spec.get("name"), lambda key: spec.get(key) == "untrained"
    if name == "ud2m" and not untrained("unfolding"):
        from operators.solvers.unfolding_file import resolve_path

        try:
            return {"unfolding": resolve_path(spec.get("unfolding"))}
        except FileNotFoundError:
            return {}
    from operators.solvers import conditional, indigo, irsde

    if name in ("conditional", "irsde") and not untrained("weights"):
        default = (conditional if name == "conditional" else irsde).DEFAULT_WEIGHTS
        return {"weights": shipped_weights(spec.get("weights") or default)}
    if name != "indigo":
        return {}
    denoiser, inn = spec.get("denoiser", indigo.IndigoConfig.denoiser), spec.get("inn", indigo.IndigoConfig.inn)
    space = "latent" if denoiser == "prior" and (prior or {}).get("name") in ("embedded_latent", "diffusers") else "pixel"
    files = {} if untrained("weights") else {
        "inn": shipped_weights(spec.get("weights") or indigo.DEFAULT_WEIGHTS[inn, space][0])}
    if denoiser == "conditional" and not untrained("conditional_weights"):
        files["conditional"] = shipped_weights(spec.get("conditional_weights") or conditional.DEFAULT_WEIGHTS)
    return files


def solver_digest(spec: dict, prior: dict | None = None) -> dict[str, str]:
    """{label:file name: digest} of :func:`solver_files` that exist ({} when untrained or missing,
    which the solver reports itself): retrained solver weights make new rows, as retrained priors
    do."""
    return {f"{label}:{p.name}": file_digest(p) for label, p in solver_files(spec, prior).items() if p.is_file()}


def weights_digest(prior: dict, solver: dict | None = None) -> dict[str, str]:
    """:func:`prior_digest` with :func:`solver_digest` beside it."""
    return {**prior_digest(prior), **solver_digest(solver or {}, prior)}
