"""Row columns shared by the stages: arrays travel as .npy bytes, errors as four fields."""
from __future__ import annotations

import io
import math
import traceback

import numpy as np

from actors.error_kind import error_kind

ERROR_FIELDS = ("error_stage", "error_type", "error_message", "error_kind")
EMPTY = b""


def pack(arr: np.ndarray | None, dtype: type = np.float32) -> bytes:
    """array -> .npy bytes of ``dtype`` (float32: exact, shape kept; video frames travel as
    uint8 or float16 to keep rows small); None -> b''."""
    if arr is None:
        return EMPTY
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=dtype), allow_pickle=False)
    return buf.getvalue()


def unpack(data: bytes | None) -> np.ndarray | None:
    """.npy bytes -> a read-only array viewing ``data`` (no copy: a 64 MP float32 image
    would otherwise exist three times, as the Arrow value, a ``bytes`` copy and the array)."""
    if data is None or len(data) == 0:
        return None
    buf = io.BytesIO(memoryview(data)[:4096])  # magic, version and header: well under 4 KB
    version = np.lib.format.read_magic(buf)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(buf)
    if dtype.hasobject:
        raise ValueError("packed arrays never hold Python objects")
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=buf.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def no_error() -> dict:
    return {"error_stage": "", "error_type": "", "error_message": "", "error_kind": ""}


def error_fields(stage: str, exc: BaseException) -> dict:
    """The error columns for a row that failed in ``stage``; the message names the problem,
    ``error_kind`` says whether a re-run retries it (actors/error_kind.py)."""
    msg = str(exc) or repr(exc)
    if not isinstance(exc, (ValueError, FileNotFoundError, OSError)):
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            msg += f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})"
    return {"error_stage": stage, "error_type": type(exc).__name__, "error_message": msg[:2000],
            "error_kind": error_kind(exc)}


def rows_to_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """List of row dicts (same keys) -> a column batch for Ray Data."""
    if not rows:
        return {}
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows]
        if any(isinstance(v, (bytes, bytearray)) for v in vals):
            arr = np.empty(len(vals), dtype=object)  # binary column
            arr[:] = [bytes(v) for v in vals]
        else:
            arr = np.array(vals)
        out[k] = arr
    return out


def batch_to_rows(batch: dict[str, np.ndarray]) -> list[dict]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: batch[k][i] for k in keys} for i in range(n)]
