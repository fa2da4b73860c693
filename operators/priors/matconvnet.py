"""Read a MatConvNet SimpleNN network saved as a MATLAB v7.3 MAT-file (HDF5, via h5py).

Only the layer types the published FFDNet and DnCNN files use are accepted: ``conv`` (3x3,
stride 1, padding 1, dilation 1, with bias), ``relu`` (no leak), ``SubP`` (FFDNet's pixel
(un)shuffle, with its ``scale``) and ``concat``. Anything else is an error naming the layer,
so a file this reader does not understand never loads silently.

Axis order: MATLAB stores a conv filter bank as [kh, kw, in, out] in column-major order, so
h5py returns it reversed, (out, in, kw, kh). :func:`read_simplenn` swaps the last two axes to
give PyTorch's (out, in, kh, kw) (MatConvNet convs are cross-correlations, as in PyTorch) and
flattens each (1, out) bias to (out,).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED = ("conv", "relu", "SubP", "concat")


@dataclass(frozen=True)
class Layer:
    """One SimpleNN layer. conv: ``weight`` (out, in, kh, kw) and ``bias`` (out,) float32;
    SubP: ``scale`` (0.5 = 2x pixel-unshuffle, 2 = 2x pixel-shuffle)."""

    type: str
    name: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    scale: float | None = None


def _text(ds) -> str:
    """A MATLAB char array (uint16 codes) -> str."""
    return "".join(map(chr, np.asarray(ds[()]).ravel()))


def _scalar(group, key: str, default: float) -> list[float]:
    return np.asarray(group[key][()], dtype=np.float64).ravel().tolist() if key in group else [default]


def _check(ok: bool, path: Path, layer: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{path}: layer {layer!r} is not supported ({what}); this reader takes 3x3 "
                         f"convs with stride 1, padding 1 and a bias, plain ReLU, SubP and concat")


def _conv(f, group, path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    refs = np.asarray(group["weights"][()]).ravel(order="F")
    _check(len(refs) == 2, path, name, f"{len(refs)} weight arrays, expected filters and bias")
    w = np.asarray(f[refs[0]][()], dtype=np.float32)
    b = np.asarray(f[refs[1]][()], dtype=np.float32).ravel()
    _check(w.ndim == 4 and w.shape[2:] == (3, 3) and b.shape == (w.shape[0],), path, name,
           f"filters {w.shape}, bias {b.shape}")
    for key, want in (("pad", 1.0), ("stride", 1.0), ("dilate", 1.0)):
        _check(all(v == want for v in _scalar(group, key, want)), path, name, f"{key} != {want:g}")
    return np.ascontiguousarray(w.swapaxes(2, 3)), b


def read_simplenn(path: str | Path) -> list[Layer]:
    """The layers of ``net.layers`` in order (torch-layout conv weights, see module doc).

    Raises FileNotFoundError for a missing file and ValueError for a file that is not a v7.3
    MAT-file, has no ``net/layers``, or holds a layer type or setting not listed above.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MatConvNet file not found: {path}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not a MATLAB v7.3 (HDF5) MAT-file; re-save it with save(..., '-v7.3')")
    layers = []
    with h5py.File(path, "r") as f:
        if "net/layers" not in f:
            raise ValueError(f"{path} has no 'net/layers': not a MatConvNet SimpleNN file")
        for ref in np.asarray(f["net/layers"][()]).ravel(order="F"):
            group = f[ref]
            kind, name = _text(group["type"]), _text(group["name"])
            _check(kind in SUPPORTED, path, name, f"type {kind!r}")
            if kind == "conv":
                w, b = _conv(f, group, path, name)
                layers.append(Layer(kind, name, weight=w, bias=b))
            elif kind == "relu":
                _check(_scalar(group, "leak", 0.0) == [0.0], path, name, "leaky ReLU")
                layers.append(Layer(kind, name))
            elif kind == "SubP":
                scale = _scalar(group, "scale", 0.0)[0]
                _check(scale in (0.5, 2.0), path, name, f"SubP scale {scale}")
                layers.append(Layer(kind, name, scale=scale))
            else:
                layers.append(Layer(kind, name))
    return layers


def layer_types(layers: list[Layer]) -> list[str]:
    """The type sequence with ReLUs dropped, e.g. ['SubP', 'concat', 'conv', ..., 'SubP']."""
    return [layer.type for layer in layers if layer.type != "relu"]


def convs(layers: list[Layer]) -> list[Layer]:
    return [layer for layer in layers if layer.type == "conv"]
