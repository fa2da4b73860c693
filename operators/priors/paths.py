"""Where weights live: the repo's shipped ``weights/`` and the shared data beside the checkout."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
WEIGHTS_DIR = REPO_ROOT / "weights"
SHARED_WEIGHTS_DIR = REPO_ROOT.parent / "shared" / "data" / "weights"
TRAIN_COMMAND = "restoray run configs/train-prior.yaml"


def shipped_weights(name_or_path: str | Path) -> Path:
    """A name (``embedded_pixel``) -> weights/<name>.safetensors; a path is returned as is."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.is_absolute() or len(p.parts) > 1:
        if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
            return REPO_ROOT / p  # a repo-relative path ("weights/x.safetensors") from any cwd
        return p
    return WEIGHTS_DIR / f"{name_or_path}.safetensors"


def missing_weights_error(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} weights not found: {path}. Train them with `{TRAIN_COMMAND}` "
        f"(it writes weights/<name>.safetensors), or pass weights=<path to a .safetensors file>."
    )


def shared_weights(filename: str) -> Path:
    """../shared/data/weights/<filename> relative to the repo (real third-party weights)."""
    return SHARED_WEIGHTS_DIR / filename
