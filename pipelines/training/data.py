"""Training patches: images decoded once into memory, random crops + flips/rot90 from a generator."""
from __future__ import annotations

import numpy as np
import torch

from operators.media import decode_image
from pipelines.storage import list_inputs, read_bytes


def load_images(uri: str, grey: bool = False, limit: int | None = None) -> list[np.ndarray]:
    """Every image under ``uri`` as uint8 (C, H, W) arrays (3 channels, or 1 when ``grey``)."""
    images = []
    for f in list_inputs(uri)[:limit]:
        px = decode_image(read_bytes(f.uri)).pixels
        arr = px.mean(axis=2, keepdims=True) if grey else px
        images.append(np.round(arr.transpose(2, 0, 1) * 255).astype(np.uint8))
    if not images:
        raise FileNotFoundError(f"no training images found under {uri}")
    return images


class PatchSampler:
    """Batches of random patches (B, C, p, p) in [0, 1]; deterministic given the generator."""

    def __init__(self, images: list[np.ndarray], patch: int, batch_size: int, generator: torch.Generator):
        small = [im.shape for im in images if min(im.shape[1:]) < patch]
        if small:
            raise ValueError(f"patch {patch} is larger than some training images, e.g. {small[0]}")
        self.images = [torch.from_numpy(im) for im in images]
        self.patch, self.batch_size, self.g = patch, batch_size, generator

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.g))

    def sample(self) -> torch.Tensor:
        p = self.patch
        out = []
        for _ in range(self.batch_size):
            im = self.images[self._randint(len(self.images))]
            top, left = self._randint(im.shape[1] - p + 1), self._randint(im.shape[2] - p + 1)
            crop = im[:, top:top + p, left:left + p]
            crop = torch.rot90(crop, self._randint(4), dims=(1, 2))
            if self._randint(2):
                crop = crop.flip(2)
            out.append(crop)
        return torch.stack(out).float() / 255.0
