"""Built-in inputs: ``skimage://photos`` exports scikit-image's sample colour photographs;
``skimage://video`` makes a short clip from one of them with a moving camera (no download)."""
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


def export_skimage_clip(dest: str, frames: int = 36, size: tuple[int, int] = (192, 256), fps: int = 25) -> str:
    """Write ``pan.mkv`` (FFV1, lossless): a ``size`` = (H, W) camera panning and drifting
    over scikit-image's astronaut photo, sub-pixel steps (bilinear), ``frames`` at ``fps``;
    return ``dest``."""
    import av
    from scipy.ndimage import map_coordinates
    from skimage import data

    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, "pan.mkv")
    if os.path.exists(path):
        return dest
    img = data.astronaut().astype(np.float32)
    h, w = size
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    tmp = path + ".tmp.mkv"
    with av.open(tmp, mode="w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for t in range(frames):
            top, left = 60 + 1.3 * t + 8 * np.sin(t / 6), 120 + 2.7 * t  # a handheld pan
            frame = np.stack([map_coordinates(img[..., c], [rows + top, cols + left], order=1)
                              for c in range(3)], axis=-1)
            vf = av.VideoFrame.from_ndarray(np.clip(frame + 0.5, 0, 255).astype(np.uint8), format="rgb24")
            out.mux(stream.encode(vf.reformat(format="bgr0")))
        out.mux(stream.encode(None))
    os.replace(tmp, path)
    return dest


def resolve_input(uri: str, output: str) -> str:
    """Map a built-in input URI to a real one; other URIs pass through."""
    if uri.startswith("skimage://"):
        if "://" in output and not output.startswith("file://"):
            dest = os.path.abspath(os.path.join("runs", "samples", "skimage"))
        else:
            dest = os.path.join(os.path.abspath(output.removeprefix("file://")), "_samples")
        if uri == "skimage://video":
            return os.path.join(export_skimage_clip(dest), "pan.mkv")
        return export_skimage_photos(dest)
    return uri
