"""Stage `load` on single rows: reference matching (synthesize: false) and the mod-crop scale."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.columns import unpack
from operators.media import encode_png
from operators.metrics.quality import crop_reference, quality
from pipelines.stages.load import LoadStage


def _png(path, h, w, seed=0):
    img = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    path.write_bytes(encode_png(img))
    return str(path)


def _row(src, ref=""):
    return {"id": "r0", "source_uri": src, "relative_path": "a.png", "reference_uri": ref}


def test_reference_one_pixel_larger_is_mod_cropped(tmp_path):
    torch.set_num_threads(1)
    lq = _png(tmp_path / "lq.png", 10, 12)
    ref = _png(tmp_path / "ref.png", 43, 50, seed=1)  # x4 restore is 40x48: larger by 3 and 2 < 4
    out = LoadStage({"name": "sr", "scale": 4}, False, 0).load_row(_row(lq, ref))
    assert out["error_stage"] == "", out["error_message"]
    assert (out["height"], out["width"]) == (40, 48)
    assert unpack(out["hq"]).shape == (40, 48, 3)


def test_reference_of_another_size_is_a_metrics_error_row(tmp_path):
    lq = _png(tmp_path / "lq.png", 10, 12)
    ref = _png(tmp_path / "ref.png", 44, 48, seed=1)  # 4 rows too many: not a mod-crop
    out = LoadStage({"name": "sr", "scale": 4}, False, 0).load_row(_row(lq, ref))
    assert out["error_stage"] == "metrics"
    assert "44x48" in out["error_message"] and "40x48" in out["error_message"]


def test_restored_quality_never_resamples():
    ref = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    assert quality(ref, ref, resize=False)[1] == pytest.approx(1.0)  # equal sizes: compared as is
    with pytest.raises(ValueError, match="reference"):
        quality(ref[:12, :12], ref, resize=False)
    assert quality(ref[::2, ::2], ref)[0] > 0  # LQ metrics still resize
    np.testing.assert_array_equal(crop_reference(ref, (14, 15), scale=4), ref[:14, :15])
    with pytest.raises(ValueError, match="16x16"):
        crop_reference(ref, (14, 15), scale=2)


def test_compose_chain_on_an_odd_size_restores_in_load(tmp_path):
    from operators.degradations import build_degradation

    spec = {"name": "compose", "ops": [{"name": "blur"}, {"name": "sr", "scale": 4}]}
    assert build_degradation(spec).scale == 4
    src = _png(tmp_path / "odd.png", 97, 131)
    out = LoadStage(spec, True, 0).load_row(_row(src))
    assert out["error_stage"] == "", out["error_message"]
    assert unpack(out["hq"]).shape == (96, 128, 3) and unpack(out["lq"]).shape == (24, 32, 3)


def test_a_real_jpeg_brings_its_own_tables(tmp_path):
    """synthesize: false with a JPEG file: the spec carries the file's quantization tables and
    subsampling (its quantization constraint set), not the configured quality's."""
    import json

    from PIL import Image

    from operators.degradations import build_degradation
    from operators.degradations.jpeg import quant_table

    img = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.jpg", quality=23, subsampling="4:4:4")
    out = LoadStage({"name": "jpeg", "quality": 75}, False, 0).load_row(_row(str(tmp_path / "a.jpg")))
    assert out["error_stage"] == "", out["error_message"]
    op = build_degradation(json.loads(out["degradation"]))
    assert op.subsampling == "4:4:4" and op.exact_prox
    assert np.array_equal(op.quant_tables()[0], quant_table(23, False))
    y = torch.from_numpy(unpack(out["lq"]).copy()).permute(2, 0, 1)[None].double()
    assert torch.allclose(op.project(y, y), y, atol=1e-9)  # the decoded file is in its own set
    png = LoadStage({"name": "jpeg", "quality": 75}, False, 0).load_row(_row(_png(tmp_path / "b.png", 8, 8)))
    assert "tables" not in json.loads(png["degradation"])
