"""Built-in inputs: ``skimage://photos`` exports scikit-image's sample colour photographs."""
from __future__ import annotations

import os

import numpy as np

from operators.media import encode_png

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def export_skimage_photos(dest: str, size: int = 256) -> str:
    """Write the sample photos that scikit-image ships (no download) as PNGs, centre-cropped
    to ``size`` x ``size``; return ``dest``."""
    from skimage import data

    os.makedirs(dest, exist_ok=True)
    for name in SKIMAGE_PHOTOS:
        img = getattr(data, name)()
        h, w = img.shape[:2]
        s = min(size, h, w)
        top, left = (h - s) // 2, (w - s) // 2
        crop = img[top:top + s, left:left + s, :3].astype(np.float32) / 255.0
        path = os.path.join(dest, f"{name}.png")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(encode_png(crop))
    return dest


def resolve_input(uri: str, output: str) -> str:
    """Map a built-in input URI to a real one; other URIs pass through."""
    if uri.startswith("skimage://"):
        if "://" in output and not output.startswith("file://"):
            dest = os.path.abspath(os.path.join("runs", "samples", "skimage"))
        else:
            dest = os.path.join(os.path.abspath(output.removeprefix("file://")), "_samples")
        return export_skimage_photos(dest)
    return uri
