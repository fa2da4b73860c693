"""Write small MatConvNet SimpleNN networks as MATLAB v7.3 (HDF5) files, laid out like the
published FFDNet / DnCNN files (``net/layers`` object refs, char arrays as uint16, conv filters
in h5py order (out, in, kw, kh), biases (1, out)), and run them the way the MANIFEST checked:
the raw h5py arrays on the spatially transposed image."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def _chars(s: str) -> np.ndarray:
    return np.array([[ord(c)] for c in s], dtype=np.uint16)


def random_convs(shapes: list[tuple[int, int]], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(filters (out, in, kw, kh), bias (1, out))] for (in, out) pairs, scaled to stay O(1)."""
    rng = np.random.default_rng(seed)
    return [((rng.standard_normal((o, i, 3, 3)) / np.sqrt(9 * i)).astype(np.float32),
             (0.1 * rng.standard_normal((1, o))).astype(np.float32)) for i, o in shapes]


def write_simplenn(path: Path, layers: list[dict]) -> Path:
    """layers: dicts with ``type`` and, for conv, ``weights`` = (filters, bias); SubP ``scale``;
    any other key (pad, stride, leak ...) is written as a 1x1 double."""
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        layer_refs = []
        for i, layer in enumerate(layers):
            g = refs.create_group(f"layer{i}")
            g["type"], g["name"] = _chars(layer["type"]), _chars(f"layer{i + 1}")
            if layer["type"] == "conv":
                w, b = layer["weights"]
                ds = g.create_dataset("weights", (2, 1), dtype=h5py.ref_dtype)
                ds[0, 0] = refs.create_dataset(f"w{i}", data=w).ref
                ds[1, 0] = refs.create_dataset(f"b{i}", data=b).ref
                layer = {"pad": 1.0, "stride": 1.0, "dilate": 1.0, **layer}
            elif layer["type"] == "relu":
                layer = {"leak": 0.0, **layer}
            for key, value in layer.items():
                if key not in ("type", "weights"):
                    g[key] = np.array([[value]], dtype=np.float64)
            layer_refs.append(g.ref)
        ds = f.create_group("net").create_dataset("layers", (len(layers), 1), dtype=h5py.ref_dtype)
        for i, ref in enumerate(layer_refs):
            ds[i, 0] = ref
    return path


def conv_stack(convs: list[dict]) -> list[dict]:
    """conv, relu, conv, ..., conv from conv layer dicts."""
    out = []
    for i, c in enumerate(convs):
        out += [c] + ([{"type": "relu"}] if i < len(convs) - 1 else [])
    return out


def run_transposed(convs: list[tuple[np.ndarray, np.ndarray]], x: torch.Tensor) -> torch.Tensor:
    """The conv/ReLU stack with the raw h5py arrays, applied to (B, C, W, H) (a transposed image)."""
    for i, (w, b) in enumerate(convs):
        x = F.conv2d(x, torch.from_numpy(w), torch.from_numpy(b).flatten(), padding=1)
        x = F.relu(x) if i < len(convs) - 1 else x
    return x


def ffdnet_reference(convs, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """FFDNet as the MANIFEST runs the .mat (x: (B, C, H, W), H and W even)."""
    z = F.pixel_unshuffle(x.transpose(-1, -2), 2)
    z = torch.cat([z, torch.full_like(z[:, :1], sigma)], dim=1)
    return F.pixel_shuffle(run_transposed(convs, z), 2).transpose(-1, -2)
