from __future__ import annotations

import h5py
import numpy as np
import pytest

from operators.priors.matconvnet import layer_types, read_simplenn

from ._data import SHARED_DATA, needs_shared_data
from ._matconvnet_file import conv_stack, random_convs, write_simplenn

WEIGHTS = SHARED_DATA / "weights"


def test_filters_come_back_in_torch_layout(tmp_path):
    (w, b), = random_convs([(2, 5)])
    path = write_simplenn(tmp_path / "n.mat", [{"type": "conv", "weights": (w, b)}])
    (layer,) = read_simplenn(path)
    assert layer.type == "conv" and layer.name == "layer1"
    np.testing.assert_array_equal(layer.weight, w.swapaxes(2, 3))  # (out, in, kw, kh) -> (out, in, kh, kw)
    np.testing.assert_array_equal(layer.bias, b.ravel())
    assert layer.weight.shape == (5, 2, 3, 3) and layer.weight.flags.c_contiguous


def test_subp_scale_and_types(tmp_path):
    convs = [{"type": "conv", "weights": cw} for cw in random_convs([(5, 4), (4, 4)])]
    path = write_simplenn(tmp_path / "n.mat", [{"type": "SubP", "scale": 0.5}, {"type": "concat"},
                                               *conv_stack(convs), {"type": "SubP", "scale": 2.0}])
    layers = read_simplenn(path)
    assert [la.scale for la in layers if la.type == "SubP"] == [0.5, 2.0]
    assert layer_types(layers) == ["SubP", "concat", "conv", "conv", "SubP"]


@pytest.mark.parametrize("layer, needle", [
    ({"type": "bnorm"}, "type 'bnorm'"),
    ({"type": "relu", "leak": 0.1}, "leaky ReLU"),
    ({"type": "conv", "stride": 2.0}, "stride != 1"),
    ({"type": "conv", "pad": 0.0}, "pad != 1"),
    ({"type": "SubP", "scale": 3.0}, "SubP scale 3.0"),
])
def test_unsupported_layers_are_refused_by_name(tmp_path, layer, needle):
    if layer["type"] == "conv":
        layer = {**layer, "weights": random_convs([(1, 1)])[0]}
    path = write_simplenn(tmp_path / "n.mat", [layer])
    with pytest.raises(ValueError, match=f"layer 'layer1' is not supported \\({needle}"):
        read_simplenn(path)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mat"):
        read_simplenn(tmp_path / "nope.mat")
    v5 = tmp_path / "v5.mat"
    v5.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(ValueError, match="not a MATLAB v7.3"):
        read_simplenn(v5)
    with h5py.File(tmp_path / "other.mat", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="no 'net/layers'"):
        read_simplenn(tmp_path / "other.mat")


@needs_shared_data
@pytest.mark.parametrize("name, first, last, n", [
    ("FFDNet_color.mat", (96, 13, 3, 3), (12, 96, 3, 3), 12),
    ("FFDNet_gray.mat", (64, 5, 3, 3), (4, 64, 3, 3), 15),
    ("GD_Color_Blind.mat", (64, 3, 3, 3), (3, 64, 3, 3), 20),
])
def test_published_files(name, first, last, n):
    layers = read_simplenn(WEIGHTS / name)
    convs = [la for la in layers if la.type == "conv"]
    assert len(convs) == n and convs[0].weight.shape == first and convs[-1].weight.shape == last
    assert all(la.weight.dtype == np.float32 and la.bias.shape == (la.weight.shape[0],) for la in convs)
