"""Video codec compression: H.264 / H.265 at a CRF through PyAV (libx264 / libx265), encoded
and decoded in memory. Frames are padded (edge replication) to even sizes for yuv420p, to at
least 64 x 64 for H.265, and cropped back."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from operators.degradations.base import Degradation, Noise

_ENCODERS = {"h264": "libx264", "h265": "libx265"}


@dataclass(frozen=True, eq=False)
class VideoCodec(Degradation):
    """y = decode(encode(x)); x: (T, C in {1, 3}, H, W) frames of one clip, or (B, T, C, H, W)."""

    name: ClassVar[str] = "video_codec"
    linear: ClassVar[bool] = False
    codec: Literal["h264", "h265"] | str = "h264"
    crf: int = 28
    preset: str = "medium"
    fps: int = 25
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if self.codec not in _ENCODERS:
            raise ValueError(f"unknown video codec {self.codec!r}; valid: {', '.join(_ENCODERS)}")
        if not 0 <= int(self.crf) <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")

    @property
    def coding_sigma(self) -> float:
        """RMS coding error of the decoded frames, estimated from the CRF: 0.0036 * 2^(crf / 12)
        (x264's quantiser step doubles every 6 CRF, its RMS error every ~12). Fitted on 24 frames
        of the development clips at CRF 20-45 with libx264: measured at CRF 35 0.013 (bikes,
        blurry) to 0.039 (carphone), fit 0.027; a content-blind estimate within a factor ~2."""
        return 0.0036 * 2.0 ** (int(self.crf) / 12.0)

    @property
    def init_sigma(self) -> float:
        """The decoded frames (the initial estimate) carry the coding error (plus any noise)."""
        return math.hypot(self.coding_sigma, self.sigma_n)

    @property
    def prox_sigma2(self) -> float:
        return self.init_sigma**2

    @property
    def exact_prox(self) -> bool:
        """The data step below is exact for its model (coding error as white Gaussian noise)."""
        return True

    def prox(self, z: torch.Tensor, y: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """argmin_x ||y - x||^2 / (2 s^2) + rho/2 ||x - z||^2 with s = ``init_sigma``: the
        decoded frames as a Gaussian measurement of the clean ones at the estimated coding-error
        level (a model: the codec's own constraint set is not convex in pixels across motion
        compensation), so artifact removal runs as denoising at that level."""
        rho = torch.as_tensor(rho, dtype=z.dtype, device=z.device)
        rho = rho.view(-1, *([1] * (z.ndim - 1))) if rho.ndim else rho
        inv = 1.0 / self.prox_sigma2
        return (inv * y + rho * z) / (inv + rho)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 5:
            return torch.stack([self.forward(clip) for clip in x])
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"video_codec takes frames (T, C in {{1, 3}}, H, W), got {tuple(x.shape)}")
        t, c, h, w = x.shape
        v = x.detach().clamp(0, 1).expand(-1, 3, -1, -1) if c == 1 else x.detach().clamp(0, 1)
        # yuv420p needs even sizes; libx265 corrupts its heap on some frames under 64 px
        # (seen at widths 40 and 48), so h265 frames are padded to at least 64 x 64.
        lo = 64 if self.codec == "h265" else 0
        ph, pw = max(h + h % 2, lo) - h, max(w + w % 2, lo) - w
        v = F.pad(v, (0, pw, 0, ph), mode="replicate") if (ph or pw) else v
        frames = (v * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        dec = self._roundtrip(frames)
        y = torch.from_numpy(dec).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255
        y = y[..., :h, :w]
        return y[:, :1] if c == 1 else y

    def _roundtrip(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 -> the decoded (T, H, W, 3) uint8."""
        import av

        buf = io.BytesIO()
        with av.open(buf, mode="w", format="matroska") as out:
            stream = out.add_stream(_ENCODERS[self.codec], rate=int(self.fps))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            opts = {"crf": str(int(self.crf)), "preset": self.preset}
            if self.codec == "h265":
                opts["x265-params"] = "log-level=error"
            stream.options = opts
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        buf.seek(0)
        with av.open(buf, mode="r") as inp:
            dec = [fr.to_ndarray(format="rgb24") for fr in inp.decode(video=0)]
        if len(dec) != len(frames):
            raise RuntimeError(f"video_codec: encoded {len(frames)} frames, decoded {len(dec)}")
        return np.stack(dec)
