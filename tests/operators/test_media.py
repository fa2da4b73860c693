from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from operators.media import MediaError, decode_image, encode_png


def _png(arr, mode=None, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_odd_formats_decode_to_rgb():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (131, 97), dtype=np.uint8)
    d = decode_image(_png(grey))
    assert d.pixels.shape == (131, 97, 3) and d.grey and d.pixels.dtype == np.float32
    np.testing.assert_allclose(d.pixels[..., 0], grey / 255.0, atol=1e-6)

    g16 = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    d16 = decode_image(_png(g16))
    np.testing.assert_allclose(d16.pixels[..., 1], g16 / 65535.0, atol=1e-6)

    rgba = rng.integers(0, 256, (17, 19, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    np.testing.assert_allclose(decode_image(_png(rgba)).pixels, rgba[..., :3] / 255.0, atol=1e-6)

    cmyk = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).convert("CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG")
    assert decode_image(buf.getvalue()).pixels.shape == (16, 16, 3)


@pytest.mark.parametrize("data, needle", [
    (b"", "empty file"),
    (b"this is not an image at all", "cannot decode image"),
])
def test_bad_bytes_raise_media_error(data, needle):
    with pytest.raises(MediaError, match=needle):
        decode_image(data)


def test_truncated_and_bomb():
    arr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _png(arr)
    with pytest.raises(MediaError):
        decode_image(data[: len(data) // 2])
    big = _png(np.zeros((400, 400), np.uint8))
    with pytest.raises(MediaError, match="too large"):
        decode_image(big, max_pixels=100_000)


def test_encode_png_round_trip():
    x = np.random.default_rng(2).random((9, 11, 3)).astype(np.float32)
    back = decode_image(encode_png(x)).pixels
    assert np.abs(back - x).max() <= 0.5 / 255 + 1e-6
    assert decode_image(encode_png(x, grey=True)).grey
