"""What a weights file's first bytes say it is, checked at config load against what its loader
reads: safetensors (an 8-byte little-endian header length, a JSON header, tensor data that
ends exactly at the end of the file), a torch checkpoint (``torch.save``'s zip with a
``data.pkl``, or the legacy pickle), a MATLAB v7.3 MAT-file (HDF5, read with h5py).

``weights_problem`` returns a sentence for the config error, or None; nothing is unpickled.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_OFFSETS = (0, 512, 1024, 2048)  # where HDF5 allows the superblock (MATLAB: after 512 bytes)


def weights_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` cannot be the weights a ``kind`` prior loads (pipelines.prior_files kinds:
    embedded and prompt_embeds read safetensors; dncnn a .mat or a torch file; ffdnet a .mat;
    dvdnet torch files; diffusers a folder, not checked here)."""
    if kind == "diffusers" or path.is_dir():
        return None if path.is_dir() else f"{path} is not a folder"
    if not path.is_file():
        return f"{path} is not a regular file"
    if kind in ("embedded", "prompt_embeds") or path.suffix.lower() == ".safetensors":
        return safetensors_problem(path)
    if kind == "ffdnet" or path.suffix.lower() == ".mat":
        return mat_problem(path)
    return torch_problem(path)


def safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > MAX_SAFETENSORS_HEADER or 8 + n > size:
            return f"{path} is not a safetensors file (its first 8 bytes give no header that fits its {size} bytes)"
        raw = f.read(n)
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return f"{path} is not a safetensors file (its header is not a safetensors JSON table)"
    data = size - 8 - n
    if max(ends, default=0) != data:
        return f"{path} is a damaged safetensors file (its header indexes {max(ends, default=0)} bytes of tensors, " \
               f"the file holds {data})"
    return None


def torch_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                if any(name.endswith("data.pkl") for name in z.namelist()):
                    return None
        except zipfile.BadZipFile:
            pass
        return f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return None  # torch.save's legacy format: a pickle (protocol 2-5), read with weights_only=True
    return f"{path} is not a PyTorch checkpoint (neither torch.save's zip nor its legacy pickle)"


def mat_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(HDF5_OFFSETS[-1] + len(HDF5_SIGNATURE))
    if any(head[o:o + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for o in HDF5_OFFSETS):
        return None
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return f"{path} is a MATLAB v5 MAT-file; restoray reads v7.3 (HDF5) MAT-files: re-save it with -v7.3"
    return f"{path} is not a MATLAB v7.3 MAT-file (no HDF5 signature)"
